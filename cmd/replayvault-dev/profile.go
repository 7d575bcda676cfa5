package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/replayvault/replayvault/cmd/internal/cli"
)

// profiled runs c and, when REPLAYVAULT_DEV_CPUPROFILE names a file,
// writes a CPU profile of its first REPLAYVAULT_DEV_CPUPROFILE_FOR (a
// duration, default 30s) to it: the way to see where a function under
// `replayvault-dev bench` (which passes its environment on) spends its CPU.
// The profile stops on a timer, as a function exits on SIGTERM without
// returning.
func profiled(c cli.Command) cli.Command {
	run := c.Run
	c.Run = func(ctx context.Context, args []string, out io.Writer) error {
		path := os.Getenv("REPLAYVAULT_DEV_CPUPROFILE")
		if path == "" {
			return run(ctx, args, out)
		}
		d := 30 * time.Second
		if v := os.Getenv("REPLAYVAULT_DEV_CPUPROFILE_FOR"); v != "" {
			var err error
			if d, err = time.ParseDuration(v); err != nil {
				return fmt.Errorf("REPLAYVAULT_DEV_CPUPROFILE_FOR: %w", err)
			}
		}
		f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		stop := time.AfterFunc(d, func() {
			pprof.StopCPUProfile()
			f.Close()
		})
		defer func() {
			if stop.Stop() {
				pprof.StopCPUProfile()
				f.Close()
			}
		}()
		return run(ctx, args, out)
	}
	return c
}
