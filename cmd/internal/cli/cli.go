// Package cli is what the project's two commands share: a table of
// subcommands with their dispatch and usage, flag sets that report errors
// instead of exiting, and the `function` subcommand that serves one
// registered Cloud Function the way Cloud Run does.
//
// cmd/replayvault is the binary production runs (Cloud Build migrates with
// it); cmd/replayvault-dev holds the developer tools (dev stack, publish,
// bench) and links the local stand-ins, which production never does.
package cli

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

// Command is one subcommand. Run receives the arguments after the command
// name and writes its normal output to out.
type Command struct {
	Summary string
	Run     func(ctx context.Context, args []string, out io.Writer) error
}

// Program is a command-line program made of subcommands.
type Program struct {
	// Name is the program's name in usage lines.
	Name string
	// Commands maps each subcommand's name to it.
	Commands map[string]Command
	// Elsewhere names subcommands that belong to the other program, with a
	// hint saying how to run them there.
	Elsewhere map[string]string
}

// Main runs p with the process's arguments, cancelling its context on
// SIGINT or SIGTERM, and exits non-zero on failure.
func (p *Program) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := p.Run(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name, err)
		}
		stop()
		os.Exit(1)
	}
}

// Run dispatches args to their subcommand.
func (p *Program) Run(ctx context.Context, args []string, out io.Writer) error {
	logging.Setup()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		p.usage(out)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	c, ok := p.Commands[args[0]]
	if !ok {
		if hint, ok := p.Elsewhere[args[0]]; ok {
			return fmt.Errorf("%q is not a command of %s: %s", args[0], p.Name, hint)
		}
		p.usage(os.Stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.Run(ctx, args[1:], out)
}

func (p *Program) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", p.Name)
	names := make([]string, 0, len(p.Commands))
	for n := range p.Commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, p.Commands[n].Summary)
	}
	fmt.Fprintf(w, "\nRun `%s <command> -h` for a command's flags.\n", p.Name)
}

// NewFlagSet returns a FlagSet for a subcommand that reports errors instead
// of exiting; usageLine follows the command's name in its usage message.
func NewFlagSet(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s %s\n\nflags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs
}
