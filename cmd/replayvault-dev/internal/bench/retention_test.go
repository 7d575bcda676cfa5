package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/cost"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestMeasureTranscode transcodes a small corpus: the bytes shrink (the
// corpus's random text less than real recordings do) and both decodes run.
func TestMeasureTranscode(t *testing.T) {
	c := NewCorpus(workload.DefaultSizes(), 16, 7)
	tc, err := measureTranscode(c, segment.LevelBetter)
	if err != nil {
		t.Fatal(err)
	}
	if tc.StoredRatio <= 0.5 || tc.StoredRatio >= 1 || tc.CPUPerSegment <= 0 || tc.DecodeGzip <= 0 || tc.DecodeZstd <= 0 {
		t.Errorf("implausible measurement %+v", tc)
	}
	t.Logf("%+v", tc)
}

// TestRetentionReport prices the sample report over every retention and
// checks the table and JSON carry it, with the 90-day comparison.
func TestRetentionReport(t *testing.T) {
	r := sampleReport()
	tc := TranscodeResult{Level: "better", StoredRatio: 0.9, CPUPerSegment: 0.01, DecodeGzip: 0.0015, DecodeZstd: 0.0002}
	r.computeRetention(33000, 32900, 1, 1, tc)
	rc := r.Retention
	if got, want := len(rc.Rows), 9*len(cost.Retentions); got != want {
		t.Fatalf("%d rows, want %d (naive; packed, +transcode, +direct at 0%% and 10%% spilled, with and without lifecycle; per retention)", got, want)
	}
	d := rc.Days90
	if !(d.Lifecycle < d.Today && d.Today < d.Naive) {
		t.Errorf("90-day totals: lifecycle %.2f, today %.2f, naive %.2f", d.Lifecycle, d.Today, d.Naive)
	}
	// The sample's 90% step acked everything within PACK_TIMEOUT.
	if rc.Delivery.Spill != 0 || rc.Delivery.WaitS != 0.9 || rc.Delivery10.Spill != 0.1 {
		t.Errorf("delivery %+v, 10%%: %+v", rc.Delivery, rc.Delivery10)
	}
	if !(d.Direct < d.Direct10 && d.Direct10 < d.TranscodeLifecycle) {
		t.Errorf("90-day totals: direct %.2f, 10%% spilled %.2f, transcode+lifecycle %.2f", d.Direct, d.Direct10, d.TranscodeLifecycle)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cost per 1M segments over the retention", "packed+transcode+lifecycle", "NEARLINE@7d COLDLINE@365d", "90 days: today (packed)",
		"+direct(0% spill)+lifecycle", "+direct(10% spill)", "90 days with direct delivery"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	buf.Reset()
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Retention == nil || back.Retention.Days90 != d || len(back.Retention.Rows) != len(rc.Rows) {
		t.Errorf("retention costs do not survive JSON: %+v", back.Retention)
	}
	// Repricing the saved run gives the same costs.
	if err := back.RepriceRetention(); err != nil {
		t.Fatal(err)
	}
	if got := back.Retention.Days90; math.Abs(got.Today-d.Today) > 1e-9 || math.Abs(got.Direct-d.Direct) > 1e-9 || len(back.Retention.Rows) != len(rc.Rows) {
		t.Errorf("repriced 90 days %+v, want %+v", got, d)
	}
}

// TestMeasureDelivery: the spill is what the 90% step did not ack in time;
// without a step the wait is the flush age.
func TestMeasureDelivery(t *testing.T) {
	for _, tc := range []struct {
		name     string
		step     *StepResult
		spill    float64
		wait     float64
		measured bool
	}{
		{"all acked in time", &StepResult{Arrived: 1000, Acked: 1000, AckP50MS: 700, AckMaxMS: 2500}, 0, 0.7, true},
		{"some nacked or lost", &StepResult{Arrived: 1000, Acked: 950, Nacked: 30, Failed: 15, Unsent: 5, AckP50MS: 800, AckMaxMS: 2500}, 0.05, 0.8, true},
		{"an answer past PACK_TIMEOUT", &StepResult{Arrived: 1000, Acked: 1000, AckP50MS: 900, AckMaxMS: 6500}, 1, 0.9, true},
		{"no step", nil, 0, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, measured := measureDelivery(tc.step, 2*time.Second)
			if got.Spill != tc.spill || got.WaitS != tc.wait || measured != tc.measured || got.SpillWaitS != 6 || got.Concurrency != cost.IngestConcurrency {
				t.Errorf("delivery %+v measured %v, want spill %g wait %g measured %v", got, measured, tc.spill, tc.wait, tc.measured)
			}
		})
	}
}
