// Command replayvault-dev holds replayvault's developer tools: the whole
// system on loopback with real local stand-ins (dev), publishing test
// sessions (publish) and the benchmark against the naive design (bench).
// It is never deployed; production runs cmd/replayvault.
//
// Usage:
//
//	replayvault-dev <command> [flags]
package main

import (
	"context"
	"io"

	"github.com/replayvault/replayvault/cmd/internal/cli"
)

var program = &cli.Program{
	Name: "replayvault-dev",
	Commands: map[string]cli.Command{
		"dev":     {Summary: "run the whole system locally (or check it once with --smoke)", Run: runDev},
		"publish": {Summary: "publish segment files or a generated session to the segment topic", Run: runPublish},
		"bench":   {Summary: "measure Pack and Serve against the naive storage design", Run: runBench},
		"chaos":   {Summary: "run Pack, Serve and Shred under injected faults and check nothing is lost", Run: runChaos},
		// The dev stack and the benchmark run the functions from this
		// binary, so it serves them too (with an optional CPU profile and the
		// benchmark's limit probe).
		"function": limitProbed(profiled(cli.Function)),
	},
	Elsewhere: map[string]string{
		"migrate": "run it with the production tool: go run ./cmd/replayvault migrate",
		"token":   "run it with the production tool: go run ./cmd/replayvault token",
	},
}

func main() { program.Main() }

// realMain runs one command line; tests call it directly.
func realMain(ctx context.Context, args []string, out io.Writer) error {
	return program.Run(ctx, args, out)
}
