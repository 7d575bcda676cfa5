package main

import (
	"context"
	"errors"
	"io"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/cmd/replayvault-dev/internal/bench"
)

// runStandins is `replayvault-dev bench standins`: the benchmark's stand-ins
// (fake-gcs-server, KMS, reject-topic sink, DB proxy) in a process of their
// own. It prints their addresses as one JSON line and runs until killed.
func runStandins(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault-dev bench standins", "-dir DIR -postgres HOST:PORT [flags] (started by replayvault-dev bench)")
	var cfg bench.StandinsConfig
	fs.StringVar(&cfg.Dir, "dir", "", "directory of the fake GCS objects (required)")
	fs.StringVar(&cfg.Bucket, "bucket", "replayvault-bench", "bucket to create")
	fs.StringVar(&cfg.Postgres, "postgres", "", "host:port of the PostgreSQL server behind the DB proxy (required)")
	fs.DurationVar(&cfg.GCSLatency, "gcs-latency", bench.DefaultGCSLatency, "latency added to every GCS request")
	fs.DurationVar(&cfg.KMSLatency, "kms-latency", bench.DefaultKMSLatency, "latency added to every KMS call")
	fs.DurationVar(&cfg.DBLatency, "db-latency", 0, "latency added to every database round trip")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Dir == "" || cfg.Postgres == "" {
		return errors.New("bench standins: -dir and -postgres are required")
	}
	return bench.RunStandins(ctx, cfg, out)
}
