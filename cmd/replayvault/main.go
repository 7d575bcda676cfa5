// Command replayvault is the operator's tool for replayvault: it migrates the
// database, mints API tokens, runs the whole system locally, publishes test
// sessions and benchmarks the storage design.
//
// Usage:
//
//	replayvault <command> [flags]
//
// Run `replayvault help` for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/replayvault/replayvault/shared/logging"
)

// command is one subcommand. run receives the arguments after the command
// name and writes its normal output to out.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

// commands lists every subcommand; each lives in its own file.
var commands = map[string]command{
	"migrate":  {"apply pending database migrations", runMigrate},
	"token":    {"mint an API token (JWT) for local use", runToken},
	"function": {"serve one function (FUNCTION_TARGET, PORT) as Cloud Run does", runFunction},
	"bench":    {"measure Pack and Serve against the naive storage design", runBench},
	"dev":      {"run the whole system locally (or check it once with --smoke)", runDev},
	"publish":  {"publish segment files or a generated session to the segment topic", runPublish},
	"rules":    {"push edge rule modules and assign them to projects", runRules},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "replayvault:", err)
		}
		stop()
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, out io.Writer) error {
	logging.Setup()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(out)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		usage(os.Stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.run(ctx, args[1:], out)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: replayvault <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun `replayvault <command> -h` for a command's flags.")
}

// newFlagSet returns a FlagSet for a subcommand that reports errors instead
// of exiting.
func newFlagSet(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: replayvault %s %s\n\nflags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs
}
