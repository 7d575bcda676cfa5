package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/shared/logging"
	"github.com/replayvault/replayvault/shared/testenv"
)

// The local stack's fixed names. The Pub/Sub emulator accepts any project.
const (
	devPubSubProject    = "local"
	devSegmentTopic     = "segments"
	devRejectTopic      = "segments-rejected"
	devPushSubscription = "pack"
	devBucket           = "replayvault-local"
	devDatabase         = "replayvault"
	// devProject is the replayvault project of the printed token and the
	// recorder page's default.
	devProject  int64 = 1
	devTokenTTL       = 24 * time.Hour
	// devFlushAge is Pack's FLUSH_AGE locally. The emulator pushes at most
	// two messages at a time per subscription, so a batch never fills and
	// every segment waits for the age: keep it short. Batch sizes seen locally
	// say nothing about production.
	devFlushAge = 50 * time.Millisecond
	// devAckDeadline is the push subscription's ack deadline: longer than
	// any flush, so the emulator does not redeliver a segment Pack still
	// holds.
	devAckDeadline = 60 * time.Second
	// devStartTimeout bounds the whole stack's start; the Pub/Sub emulator
	// (a JVM) dominates it.
	devStartTimeout = 3 * time.Minute
)

// runDev runs the whole system on loopback until ctx is cancelled (Ctrl-C),
// or with --smoke checks it end to end once and exits.
func runDev(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault-dev dev", "[--port 8080] [--data-dir DIR] [--smoke] [-v]")
	port := fs.Int("port", 8080, "port of the dev web server (viewer, recorder, ingest) on 127.0.0.1; 0 picks a free one")
	dataDir := fs.String("data-dir", "", "keep all state (database, objects, KMS seed, logs) in `DIR` and reuse it on restart; default: a temp dir removed on exit")
	smoke := fs.Bool("smoke", false, "start the stack, push a generated session through it, read it back, shred it, print one line and exit")
	smokeSegments := fs.Int("smoke-segments", 30, "segments the smoke check publishes")
	flushAge := fs.Duration("flush-age", devFlushAge, "Pack's FLUSH_AGE")
	verbose := fs.Bool("v", false, "also print the functions' logs (they always go to files under the data dir)")
	binary := fs.String("binary", "", "replayvault `executable` to run the functions with (default: this program)")
	infoFile := fs.String("info-file", "", "once ready, write the stack's URLs and a token as JSON to `FILE` (for scripts and tests)")
	webDeps := fs.String("web-deps", "", "node_modules `DIR` holding rrweb and rrweb-player (default: the repository's, installed with npm ci if missing)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *smoke && *smokeSegments < 1 {
		return errors.New("--smoke-segments must be at least 1")
	}

	// The stack's own progress logs are noise next to the table unless asked
	// for; warnings and errors still show.
	level := "warn"
	if *verbose {
		level = os.Getenv("LOG_LEVEL")
	}
	slog.SetDefault(logging.New(os.Stderr, level))

	opts := stackOptions{
		Binary:   *binary,
		DataDir:  *dataDir,
		WebAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)),
		FlushAge: *flushAge,
		LogLevel: os.Getenv("LOG_LEVEL"),
	}
	if *smoke && opts.LogLevel == "" {
		// The smoke check reads Pack's per-segment lines (debug: one per
		// acked push) to tell a direct delivery from a Pub/Sub one, and the
		// log scan then covers every line the functions can write.
		opts.LogLevel = "debug"
	}
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this program to run the functions with (pass --binary): %w", err)
		}
		opts.Binary = exe
	}
	if *verbose {
		opts.FunctionLogs = os.Stderr
	}
	if *smoke {
		// The smoke check needs no browser assets and must not collide
		// with a dev stack already running on the default port.
		if !flagSet(fs, "port") {
			opts.WebAddr = "127.0.0.1:0"
		}
	} else {
		opts.NodeModules = findWebDeps(ctx, *webDeps, out)
	}

	startCtx, cancel := context.WithTimeout(ctx, devStartTimeout)
	defer cancel()
	if !*smoke {
		fmt.Fprintln(out, "replayvault-dev dev: starting PostgreSQL, fake-gcs-server, KMS, the Pub/Sub emulator, Pack, Serve and Shred ...")
	}
	s, err := startStack(startCtx, opts)
	if err != nil {
		if ctx.Err() != nil {
			// Ctrl-C during the start: what did start is stopped again.
			return nil
		}
		return err
	}
	defer func() {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "replayvault-dev dev: stop:", err)
		}
	}()
	if *infoFile != "" {
		if err := s.writeInfo(*infoFile); err != nil {
			return err
		}
	}

	if *smoke {
		line, err := runSmoke(ctx, s, *smokeSegments)
		if err != nil {
			return fmt.Errorf("smoke: FAILED: %w\n%s", err, s.logTails(15))
		}
		fmt.Fprintln(out, line)
		return nil
	}

	s.printTable(out)
	fmt.Fprintf(out, "\nMetrics: %s/api/metrics (JSON), live charts at %s/metrics\n\n", s.webURL, s.webURL)
	sumCtx, stopSummary := context.WithCancel(ctx)
	defer stopSummary()
	go s.metrics.summarize(sumCtx, out)
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "\nreplayvault-dev dev: stopping ...")
		return nil
	case f := <-s.died:
		return fmt.Errorf("function %s exited unexpectedly (%v); log %s:\n%s", f.name, f.waitErr, f.logPath, testenv.TailFile(f.logPath, 20))
	}
}

// flagSet reports whether the command line set flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}
