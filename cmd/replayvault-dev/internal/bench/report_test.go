package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/replayvault/replayvault/shared/workload"
)

func TestCost(t *testing.T) {
	tests := []struct {
		name string
		ops  Ops
		want Cost
	}{
		{
			name: "naive: every segment its own write, KMS call and read",
			ops:  Ops{ClassA: 1e6, ClassB: 1e6, KMS: 1e6, StoredGB: 33},
			want: Cost{ClassA: 5, ClassB: 0.4, KMS: 3, StorageMonth: 0.66, Total: 9.06},
		},
		{
			name: "packed: 250 segments per write, one KMS call",
			ops:  Ops{ClassA: 4000, ClassB: 1e6, KMS: 1, StoredGB: 33},
			want: Cost{ClassA: 0.02, ClassB: 0.4, KMS: 0.000003, StorageMonth: 0.66, Total: 1.080003},
		},
		{name: "nothing", ops: Ops{}, want: Cost{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := PublishedPrices.Cost(tc.ops)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("Cost(%+v) (-want +got):\n%s", tc.ops, diff)
			}
		})
	}
}

func TestPerMillion(t *testing.T) {
	if got := perMillion(4, 1000); got != 4000 {
		t.Errorf("perMillion(4, 1000) = %g, want 4000", got)
	}
	if got := perMillion(4, 0); got != 0 {
		t.Errorf("perMillion(4, 0) = %g, want 0", got)
	}
}

// sampleReport builds a report from made-up measurements the way Run does.
func sampleReport() *Report {
	limit := LimitResult{Cores: 2, PerS: 1000, CPUPer1000: 1.5}
	packer := DesignResult{
		SustainedPerS:    600,
		At50:             &StepResult{AckP50MS: 2000, AckP99MS: 2100, CPUPer1000: 2.2},
		At90:             &StepResult{AckP50MS: 900, AckP99MS: 1900, CPUPer1000: 2.0, Arrived: 1000, Acked: 1000, AckMaxMS: 2500},
		ClassAPerMillion: 4000, KMSPerMillion: 50, TxPerMillion: 4000, RoundTripsPerMillion: 32000,
	}
	naive := DesignResult{
		SustainedPerS:    400,
		At50:             &StepResult{AckP50MS: 40, AckP99MS: 80, CPUPer1000: 2.5},
		At90:             &StepResult{AckP50MS: 60, AckP99MS: 400, CPUPer1000: 2.5},
		ClassAPerMillion: 1e6, KMSPerMillion: 1e6, TxPerMillion: 1e6, RoundTripsPerMillion: 1e6,
	}
	r := &Report{Settings: Settings{FlushAgeMS: 2000, ReadParallel: 8}, Limit: limit}
	r.Ingest = computeIngest(limit, packer, naive)
	rd := &ReadReport{Rows: []ReadRow{
		{Segments: 10, Serve: ReadResult{TTFBMS: 30, TotalMS: 60, GCSReads: 10}, Sequential: ReadResult{TTFBMS: 30, TotalMS: 250}, Parallel: ReadResult{TTFBMS: 30, TotalMS: 60}},
		{Segments: 100, Serve: ReadResult{TTFBMS: 30, TotalMS: 300, GCSReads: 100}, Sequential: ReadResult{TTFBMS: 30, TotalMS: 2400}, Parallel: ReadResult{TTFBMS: 45, TotalMS: 260}},
		{Segments: 1000, Serve: ReadResult{TTFBMS: 40, TotalMS: 1000, GCSReads: 1000}, Sequential: ReadResult{TTFBMS: 20, TotalMS: 25000}, Parallel: ReadResult{TTFBMS: 20, TotalMS: 4000}},
	}}
	rd.computeRatios()
	r.Read = rd
	r.computeCosts(33000, rd.ServeReadsPerSegment, 1)
	r.Targets = targets(r)
	return r
}

func TestComputeIngest(t *testing.T) {
	r := sampleReport()
	in := r.Ingest
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"ratio_segments_per_s", float64(in.RatioSegmentsPerS), 600.0 / 400},
		{"ratio_cpu_per_segment", float64(in.RatioCPUPerSegment), 2.5 / 2.0},
		{"limit_fraction", float64(in.LimitFraction), 1.5 / 2.0},
		{"gcs_class_a_per_million.packer", float64(in.GCSClassAPerMillion.Packer), 4000},
		{"kms_calls_per_million.naive", float64(in.KMSCallsPerMillion.Naive), 1e6},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %g, want %g", c.name, c.got, c.want)
		}
	}
}

// TestReportJSON checks that the JSON has every key the issue names, with
// values computed from the inputs.
func TestReportJSON(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"ingest.ratio_segments_per_s":              1.5,
		"ingest.ratio_cpu_per_segment":             1.25,
		"ingest.limit_fraction":                    0.75,
		"ingest.gcs_class_a_per_million.packer":    4000,
		"ingest.gcs_class_a_per_million.naive":     1e6,
		"ingest.kms_calls_per_million.packer":      50,
		"ingest.kms_calls_per_million.naive":       1e6,
		"read.ratio_ttfb.100":                      1,
		"read.ratio_ttfb.1000":                     0.5,
		"read.ratio_total.100":                     8,
		"read.ratio_total.1000":                    25,
		"read.ratio_total_parallel10.1000":         4,
		"cost_usd_per_million.packer":              0.02 + 0.4 + 50.0/1e4*0.03 + 0.66,
		"cost_usd_per_million.naive":               5 + 0.4 + 3 + 0.66,
		"costs.naive_usd.gcs_class_a":              5,
		"ingest.packer.at_90.ack_p99_ms":           1900,
		"read.serve_gcs_reads_per_segment":         1,
		"ingest.db_transactions_per_million.naive": 1e6,
	}
	for path, w := range want {
		v, ok := lookup(doc, path)
		if !ok {
			t.Errorf("JSON has no %s", path)
			continue
		}
		f, ok := v.(float64)
		if !ok {
			t.Errorf("%s = %v (%T), want a number", path, v, v)
			continue
		}
		if math.Abs(f-w) > 0.001 {
			t.Errorf("%s = %g, want %g", path, f, w)
		}
	}
}

func lookup(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func TestNumJSON(t *testing.T) {
	b, err := json.Marshal(map[string]Num{"inf": Num(math.Inf(1)), "nan": Num(math.NaN()), "x": 1.23456})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"inf":null,"nan":null,"x":1.235}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestTargets(t *testing.T) {
	r := sampleReport()
	got := map[string]bool{}
	for _, tg := range r.Targets {
		got[tg.Name] = tg.Met
	}
	want := map[string]bool{
		"GCS class A per segment, naive ÷ packer":                  true,  // 250×
		"KMS calls per segment, naive ÷ packer":                    true,  // 20,000×
		"Pack-process CPU per segment, naive ÷ packer":             false, // 1.25×
		"CPU-bound limit ÷ packer CPU per segment":                 false, // 0.75 < 0.8 (within 1.25×)
		"packer ack p99 at 90% of sustained rate":                  true,  // 1.9 s ≤ 3 s
		"1000-segment replay total read, naive sequential ÷ Serve": true,  // 25×
		"1000-segment replay total read, 10-way parallel ÷ Serve":  true,  // 4×
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("targets met (-want +got):\n%s", diff)
	}

	r.Ingest.Packer.At90.AckP99MS = 3500
	r.Read.Rows[2].Parallel.TotalMS = 2000
	r.Read.computeRatios()
	for _, tg := range targets(r) {
		switch tg.Name {
		case "packer ack p99 at 90% of sustained rate", "1000-segment replay total read, 10-way parallel ÷ Serve":
			if tg.Met {
				t.Errorf("%s met with %s, want missed", tg.Name, tg.Got)
			}
		}
	}

	// No sustained packer rate: its CPU figures are missing, and a ratio
	// against zero (+Inf) must not count as met.
	r.Ingest = computeIngest(r.Limit, DesignResult{ClassAPerMillion: 4000, KMSPerMillion: 10}, r.Ingest.Naive)
	for _, tg := range targets(r) {
		switch tg.Name {
		case "Pack-process CPU per segment, naive ÷ packer", "CPU-bound limit ÷ packer CPU per segment", "packer ack p99 at 90% of sustained rate":
			if tg.Met || tg.Got != "no sustained rate" {
				t.Errorf("%s without a sustained packer rate: met %v, got %q; want missed, \"no sustained rate\"", tg.Name, tg.Met, tg.Got)
			}
		}
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sustained segments/s", "1.50×", "GCS class A per 1M segments", "250×", "MISSED", "$9.06"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestSummarize(t *testing.T) {
	spec := StepSpec{Rate: 100, Duration: time.Second, Bound: 3 * time.Second}
	var ok []sample
	for i := range 100 {
		a := time.Duration(i) * 10 * time.Millisecond
		ok = append(ok, sample{arrive: a, send: a, done: a + 2*time.Second, status: 200, bytes: 1000})
	}
	r := summarize(spec, ok, 0)
	if !r.Sustained || r.Acked != 100 || r.AckP99MS != 2000 || r.MBPerS != 0.1 {
		t.Errorf("all acked in 2 s: got %+v, want sustained, 100 acked, p99 2 s, 0.1 MB/s", r)
	}
	late := append([]sample(nil), ok...)
	for i := range 5 {
		late[i].done = late[i].arrive + 4*time.Second
	}
	if r := summarize(spec, late, 0); r.Sustained {
		t.Errorf("5%% acked after 4 s: sustained, want not (p99 %.0f ms)", r.DelayP99MS)
	}
	nacked := append([]sample(nil), ok...)
	nacked[0].status = 503
	if r := summarize(spec, nacked, 0); r.Sustained || r.Nacked != 1 {
		t.Errorf("one nack: got sustained=%v nacked=%d, want not sustained, 1", r.Sustained, r.Nacked)
	}
	if r := summarize(spec, ok, 3); r.Sustained || r.Arrived != 103 {
		t.Errorf("3 never pushed: got sustained=%v arrived=%d, want not sustained, 103", r.Sustained, r.Arrived)
	}
	// One failure in many is still a failure: a rate is sustained only
	// with none.
	var many []sample
	for i := range 5000 {
		a := time.Duration(i) * 200 * time.Microsecond
		many = append(many, sample{arrive: a, send: a, done: a + time.Second, status: 200, bytes: 1000})
	}
	many[4000].status = 0 // failed: no response
	if r := summarize(StepSpec{Rate: 5000, Duration: time.Second, Bound: 3 * time.Second}, many, 0); r.Sustained {
		t.Errorf("1 of 5000 failed: sustained, want not (%+v)", r)
	}
}

// TestReportPushForm: the form the ingest step sent is in the JSON
// (settings.push_form) and in the table's header, and the stream makes
// requests of that form.
func TestReportPushForm(t *testing.T) {
	for _, form := range []PushForm{FormDirect, FormPubSub} {
		r := sampleReport()
		r.Settings.PushForm = form
		var js, table bytes.Buffer
		if err := r.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Settings struct {
				PushForm string `json:"push_form"`
			} `json:"settings"`
		}
		if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Settings.PushForm != string(form) {
			t.Errorf("%s: settings.push_form = %q", form, doc.Settings.PushForm)
		}
		header, _, _ := strings.Cut(table.String(), "CPU-bound limit")
		if !strings.Contains(header, "requests to Pack and the naive baseline: "+pushFormText[form]) {
			t.Errorf("%s: the table's header does not name the form:\n%s", form, header)
		}
		corpus := NewCorpus(workload.SizeDist{Median: 2 << 10, Min: 1 << 10, Max: 4 << 10, Sigma: 0.5}, 2, 1)
		if m := NewStream(corpus, workload.DefaultLengths(), 1, 1, 1).WithForm(form).Next(); m.ContentType != form.ContentType() || m.Method != form.Method() {
			t.Errorf("%s: the stream sent %s %s", form, m.Method, m.ContentType)
		}
	}
	if _, err := ParsePushForm("envelope"); err == nil {
		t.Error("ParsePushForm took an unknown form")
	}
}
