// Command replayvault is the operator's tool that production runs: it
// migrates the database, mints API tokens and serves one function the way
// Cloud Run does. It links no local stand-in and no benchmark (a test holds
// it to that); the developer tools are in cmd/replayvault-dev.
//
// Usage:
//
//	replayvault <command> [flags]
//
// Run `replayvault help` for the list of commands.
package main

import (
	"context"
	"io"

	"github.com/replayvault/replayvault/cmd/internal/cli"
)

var program = &cli.Program{
	Name: "replayvault",
	Commands: map[string]cli.Command{
		"migrate":  {Summary: "apply pending database migrations", Run: runMigrate},
		"token":    {Summary: "mint an API token (JWT) for local use", Run: runToken},
		"function": cli.Function,
		"rules":    {Summary: "push edge rule modules and assign them to projects", Run: runRules},
	},
	Elsewhere: map[string]string{
		"dev":     "the local stack is a developer tool: go run ./cmd/replayvault-dev dev",
		"publish": "publishing test sessions is a developer tool: go run ./cmd/replayvault-dev publish",
		"bench":   "the benchmark is a developer tool: go run ./cmd/replayvault-dev bench",
		"chaos":   "the fault-injection suite is a developer tool: go run ./cmd/replayvault-dev chaos",
	},
}

func main() { program.Main() }

// realMain runs one command line; tests call it directly.
func realMain(ctx context.Context, args []string, out io.Writer) error {
	return program.Run(ctx, args, out)
}
