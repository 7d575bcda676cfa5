package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/cmd/replayvault-dev/internal/bench"
)

// runNaivePack is `replayvault-dev bench naive-pack`: the naive ingest baseline
// served the way `replayvault function` serves Pack (FUNCTION_TARGET,
// PORT and Pack's configuration from the environment).
func runNaivePack(ctx context.Context, args []string, _ io.Writer) error {
	fs := cli.NewFlagSet("replayvault-dev bench naive-pack", "(with FUNCTION_TARGET="+bench.NaiveTarget+", PORT and Pack's environment)")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return bench.ServeNaive(ctx, *host)
}

// runReadNaive is `replayvault-dev bench read-naive`: the naive readers (one
// whole-object GET per segment, sequential or N-way parallel), which print
// their timings as JSON.
func runReadNaive(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault-dev bench read-naive", "-spec JSON (started by replayvault-dev bench)")
	specJSON := fs.String("spec", "", "what to read, as JSON (bench.ReaderSpec)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *specJSON == "" {
		return errors.New("bench read-naive: -spec is required")
	}
	var spec bench.ReaderSpec
	if err := json.Unmarshal([]byte(*specJSON), &spec); err != nil {
		return fmt.Errorf("bench read-naive: -spec: %w", err)
	}
	return bench.RunReader(ctx, spec, out)
}
