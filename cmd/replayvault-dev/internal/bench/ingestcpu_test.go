package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestMeasureIngestCPU runs the Ingest CPU step briefly: every way in at
// every size gives a row with both CPU times and their ratio, and the
// table and the JSON show them (no threshold: the numbers are for the
// report).
func TestMeasureIngestCPU(t *testing.T) {
	res, err := MeasureIngestCPU(context.Background(), 20*time.Millisecond, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(ingestCPUWays) * len(ingestCPUSizes); len(res.Rows) != want {
		t.Fatalf("%d rows, want %d", len(res.Rows), want)
	}
	for _, row := range res.Rows {
		if row.Segments < 3 || row.IngestUS <= 0 || row.PackUS <= 0 || row.Ratio <= 0 {
			t.Errorf("implausible row %+v", row)
		}
		t.Logf("%-13s %3d KB: ingest %6.0f µs, pack %6.0f µs, ratio %.2f", row.Way, row.SizeKB, float64(row.IngestUS), float64(row.PackUS), float64(row.Ratio))
	}
	r := &Report{IngestCPU: &res}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Ingest CPU per segment beside Pack's", "posthog-plain", "300 KB"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		IngestCPU IngestCPUResult `json:"ingest_cpu"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.IngestCPU.Rows) != len(res.Rows) {
		t.Errorf("JSON ingest_cpu: %v, %d rows", err, len(back.IngestCPU.Rows))
	}
}

// TestIngestCPUTargets: each group is judged at its worst row.
func TestIngestCPUTargets(t *testing.T) {
	r := &Report{IngestCPU: &IngestCPUResult{Rows: []IngestCPURow{
		{Way: "sentry", SizeKB: 20, Ratio: 0.2}, {Way: "rrweb", SizeKB: 300, Ratio: 0.25},
		{Way: "posthog", SizeKB: 20, Ratio: 0.3}, {Way: "posthog-plain", SizeKB: 20, Ratio: 9},
	}}}
	got := ingestCPUTargets(r)
	if len(got) != 2 {
		t.Fatalf("%d targets", len(got))
	}
	if !got[0].Met || got[0].Got != "0.25 (rrweb 300 KB)" {
		t.Errorf("sentry/rrweb target %+v", got[0])
	}
	if got[1].Met || got[1].Got != "0.30 (posthog 20 KB)" {
		t.Errorf("posthog target %+v", got[1])
	}
	if ingestCPUTargets(&Report{}) != nil {
		t.Error("targets without the step")
	}
}
