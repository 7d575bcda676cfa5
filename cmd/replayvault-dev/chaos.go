package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"text/tabwriter"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/cmd/replayvault-dev/internal/chaos"
)

// runChaos runs the fault scenarios (internal/chaos) and prints one row
// (or JSON object) per scenario; it fails when any scenario fails.
func runChaos(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault-dev chaos", "[--quick] [--load] [--json] [--only NAME]")
	quick := fs.Bool("quick", false, "small workloads and scaled-down load scenarios, for CI (under 2 minutes)")
	load := fs.Bool("load", false, "run the load scenarios (memory bounds) at full size instead of the fault scenarios")
	asJSON := fs.Bool("json", false, "print the reports as JSON instead of a table")
	only := fs.String("only", "", "run only the scenarios whose name contains this")
	rate := fs.Float64("fault-rate", 0.3, "share of eligible storage requests that fail")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := chaos.Full
	if *quick {
		o = chaos.Quick
	}
	o.Only, o.FaultRate, o.Load = *only, *rate, *load
	// The scenarios make the functions log every injected failure; keep
	// the report readable.
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	reports, err := chaos.Run(ctx, o)
	slog.SetDefault(prev)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"scenarios": reports}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\tpublished\tacked\treadable\tlost\tduplicated\thalf-visible\tshredded\tfaults\tkills\torphans swept\tleft\tpeak RSS MiB\tchild MiB\tms\tresult\t")
		for _, r := range reports {
			result := "pass"
			if !r.Pass {
				result = "FAIL"
			}
			child := "-"
			if r.ChildPeakRSSMiB > 0 {
				child = fmt.Sprintf("%.0f", r.ChildPeakRSSMiB)
				if r.LimitMiB > 0 {
					child += fmt.Sprintf("/%.0f", r.LimitMiB)
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%s\t%d\t%s\t\n", r.Scenario, r.Published, r.Acked, r.Readable,
				r.Lost, r.Duplicated, r.HalfVisible, r.Shredded, r.Faults, r.Kills, r.OrphansSwept, r.OrphansLeft, r.PeakRSSMiB, child, r.DurationMS, result)
		}
		tw.Flush()
		for _, r := range reports {
			if len(r.Figures) > 0 {
				fmt.Fprintf(out, "%s:", r.Scenario)
				for _, k := range sortedKeys(r.Figures) {
					fmt.Fprintf(out, " %s=%.6g", k, r.Figures[k])
				}
				fmt.Fprintln(out)
			}
			if r.Detail != "" {
				fmt.Fprintf(out, "%s: %s\n", r.Scenario, r.Detail)
			}
		}
	}
	for _, r := range reports {
		if !r.Pass {
			return fmt.Errorf("chaos: scenario %s failed", r.Scenario)
		}
	}
	return nil
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
