package main

import (
	"context"
	"io"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/cmd/replayvault-dev/internal/bench"
)

// limitProbed runs c with the benchmark's limit probe beside it when
// bench.LimitProbeEnv names an address: `replayvault-dev bench` then
// measures the CPU-bound limit inside the function's own process, in the
// conditions of its load steps. The production binary has no probe.
func limitProbed(c cli.Command) cli.Command {
	run := c.Run
	c.Run = func(ctx context.Context, args []string, out io.Writer) error {
		pctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		bench.StartLimitProbe(pctx)
		return run(ctx, args, out)
	}
	return c
}
