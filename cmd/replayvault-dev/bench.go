package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/cmd/replayvault-dev/internal/bench"
	"github.com/replayvault/replayvault/shared/workload"
)

// benchInternal are the processes the benchmark starts from this binary;
// they are not meant to be run by hand.
var benchInternal = map[string]func(context.Context, []string, io.Writer) error{
	"standins":   runStandins,
	"naive-pack": runNaivePack,
	"read-naive": runReadNaive,
}

// runBench measures Pack and Serve against the naive storage design.
func runBench(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 {
		if run, ok := benchInternal[args[0]]; ok {
			return run(ctx, args[1:], out)
		}
	}
	fs := cli.NewFlagSet("replayvault-dev bench", "[--quick] [--json] [flags]")
	quick := fs.Bool("quick", false, "short steps (under a minute): a smoke test, coarse numbers")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	jsonFile := fs.String("json-file", "", "also write the JSON report to this file")
	sizes := fs.String("sizes", workload.DefaultSizes().String(), "compressed segment size distribution (log-normal)")
	concurrency := fs.Int("concurrency", 1000, "most unanswered pushes at once (the instance's concurrency, Pack's MAX_CONCURRENCY)")
	gcsLatency := fs.Duration("gcs-latency", bench.DefaultGCSLatency, "latency added to every GCS request")
	kmsLatency := fs.Duration("kms-latency", bench.DefaultKMSLatency, "latency added to every KMS call")
	dbLatency := fs.Duration("db-latency", 0, "latency added to every database round trip")
	pin := fs.Int("pin", 1, "CPUs the process under test gets to itself (0: no pinning)")
	seed := fs.Uint64("seed", 1, "workload seed")
	readSizes := fs.String("read-sizes", "10,100,1000", "segment counts of the replays read back")
	skipRead := fs.Bool("skip-read", false, "skip the read benchmark")
	skipIngest := fs.Bool("skip-ingest", false, "skip the ingest benchmark")
	skipLong := fs.Bool("skip-long", false, "skip the long-replay benchmark (seek, compacted read, replay list)")
	compactLevel := fs.String("compact-zstd-level", "", "COMPACT_ZSTD_LEVEL of the long step's compaction: off (copy sealed bytes) or a zstd level (default: Shred's)")
	keep := fs.Bool("keep", false, "keep the work directory (child logs)")
	pushForm := fs.String("push-form", string(bench.FormDirect), "form of the ingest step's requests: direct (Ingest's direct delivery, Pack's main path) or pubsub (a Pub/Sub push, what spills)")
	fromJSON := fs.String("from-json", "", "measure nothing: print the report saved in this JSON file (--json-file)")
	reprice := fs.Bool("reprice", false, "with --from-json: price the saved run's counts over the retention with this build's cost model (shared/cost)")
	htmlFile := fs.String("html", "", "also write a self-contained HTML report with plots to this file")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: replayvault-dev bench [--quick] [--json] [flags]\n\n"+
			"Measures Pack and Serve against the naive design (one object, KMS call and transaction per\n"+
			"segment) on local stand-ins with cloud-like latency, and prices both. Progress goes to stderr.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	if *fromJSON != "" {
		b, err := os.ReadFile(*fromJSON)
		if err != nil {
			return err
		}
		var rep bench.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("%s: %w", *fromJSON, err)
		}
		if *reprice {
			if err := rep.RepriceRetention(); err != nil {
				return fmt.Errorf("%s: %w", *fromJSON, err)
			}
		}
		if err := writeHTML(&rep, *htmlFile); err != nil {
			return err
		}
		if *asJSON {
			return rep.WriteJSON(out)
		}
		return rep.WriteTable(out)
	}
	sd, err := workload.ParseSizeDist(*sizes)
	if err != nil {
		return err
	}
	form, err := bench.ParsePushForm(*pushForm)
	if err != nil {
		return fmt.Errorf("-push-form: %w", err)
	}
	var rs []int
	for _, s := range strings.Split(*readSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 5000 {
			return fmt.Errorf("-read-sizes: %q is not a segment count in 1..5000", s)
		}
		rs = append(rs, n)
	}
	if *concurrency < 1 {
		return fmt.Errorf("-concurrency must be positive")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if runtime.GOOS != "linux" {
		return fmt.Errorf("bench reads process accounting from /proc: it runs on Linux only")
	}
	rep, err := bench.Run(ctx, bench.Options{
		Exe: exe, Quick: *quick, Sizes: sd, Lengths: workload.DefaultLengths(), Concurrency: *concurrency,
		GCSLatency: *gcsLatency, KMSLatency: *kmsLatency, DBLatency: *dbLatency, TestCPUs: *pin, Seed: *seed,
		ReadSizes: rs, SkipRead: *skipRead, SkipIngest: *skipIngest, SkipLong: *skipLong, CompactZstdLevel: *compactLevel, Keep: *keep, PushForm: form, Progress: os.Stderr,
	})
	if err != nil {
		return err
	}
	if *jsonFile != "" {
		f, err := os.Create(*jsonFile)
		if err != nil {
			return err
		}
		if err := errors.Join(rep.WriteJSON(f), f.Close()); err != nil {
			return err
		}
	}
	if err := writeHTML(rep, *htmlFile); err != nil {
		return err
	}
	if *asJSON {
		return rep.WriteJSON(out)
	}
	return rep.WriteTable(out)
}

// writeHTML writes rep's HTML report to path, if one is asked for.
func writeHTML(rep *bench.Report, path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := errors.Join(rep.WriteHTML(f), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
