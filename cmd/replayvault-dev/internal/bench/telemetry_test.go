package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestMeasureTelemetryOverhead runs the step briefly on real stand-ins:
// the three packers, built from Pack's environment as the function builds
// itself, store every push; the instrumented ones end spans (every trace
// sampled: at least one per push, more than production sampling) and the
// one without telemetry none; the CPU figures and the environment come
// back; the table and the JSON show the result (no threshold: the numbers
// are for the report).
func TestMeasureTelemetryOverhead(t *testing.T) {
	d := testenv.NewDeps(t)
	sink, err := startPublishSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.stop()
	const storageHost = "STORAGE_EMULATOR_HOST"
	before, hadBefore := os.LookupEnv(storageHost)
	env := map[string]string{
		"DATABASE_URL":          d.DSN,
		"BUCKET":                testenv.TestBucket,
		"STORAGE_EMULATOR_HOST": d.GCS.Host(),
		"KMS_KEY":               d.KMS.KeyName(),
		"KMS_ENDPOINT":          d.KMS.Endpoint(),
		"GOOGLE_CLOUD_PROJECT":  "bench",
		"PUBSUB_EMULATOR_HOST":  sink.addr(),
		"REJECT_TOPIC":          "rejects",
	}
	corpus := NewCorpus(workload.SizeDist{Median: 4 << 10, Min: 1 << 10, Max: 16 << 10, Sigma: 0.5}, 16, 1)
	const rounds, pushes = 3, 40
	uploads0 := d.GCS.Counts().Uploads
	res, err := MeasureTelemetryOverhead(context.Background(), corpus, TelemetryOptions{Rounds: rounds, PushesPerRound: pushes, Env: env, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)

	if after, hadAfter := os.LookupEnv(storageHost); after != before || hadAfter != hadBefore {
		t.Errorf("%s = %q after the step, was %q", storageHost, after, before)
	}
	if res.Rounds != rounds || res.PushesPerRound != pushes || res.SampleRatio <= 0 || res.SampleRatio >= 1 {
		t.Errorf("rounds %d, pushes %d, ratio %g", res.Rounds, res.PushesPerRound, res.SampleRatio)
	}
	if res.CPUUSOff <= 0 || res.Sampled.CPUUS <= 0 || res.All.CPUUS <= 0 {
		t.Errorf("CPU per segment off %v, sampled %v, all %v: want all positive", res.CPUUSOff, res.Sampled.CPUUS, res.All.CPUUS)
	}
	if len(res.RoundsOffUS) != rounds || len(res.Sampled.RoundsUS) != rounds || len(res.All.RoundsUS) != rounds {
		t.Errorf("per-round CPU: %d, %d, %d values, want %d each", len(res.RoundsOffUS), len(res.Sampled.RoundsUS), len(res.All.RoundsUS), rounds)
	}
	for _, v := range []OverheadVariant{res.Sampled, res.All} {
		if !(v.CILoPct <= v.MedianPct && v.MedianPct <= v.CIHiPct) {
			t.Errorf("median %v outside its interval %v..%v", v.MedianPct, v.CILoPct, v.CIHiPct)
		}
	}
	total := int64((rounds + 1) * pushes) // with the warm-up round
	if res.All.Spans < total {
		t.Errorf("all sampled: %d spans for %d pushes, want at least one per push", res.All.Spans, total)
	}
	if res.Sampled.Spans == 0 || res.Sampled.Spans >= res.All.Spans {
		t.Errorf("production sampling: %d spans, want some and fewer than all sampled (%d)", res.Sampled.Spans, res.All.Spans)
	}
	var stored int64
	if err := d.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM segments WHERE type = $1`, segment.DefaultType).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 3*total {
		t.Errorf("%d recordings stored, want %d (every push of the three packers)", stored, 3*total)
	}
	// One flush (one object) per round and packer: no round's pushes wait
	// for the age threshold.
	if got := d.GCS.Counts().Uploads - uploads0; got != 3*(rounds+1) {
		t.Errorf("%d objects written, want %d (one flush per round and packer)", got, 3*(rounds+1))
	}
	if sink.published.Load() != 0 {
		t.Errorf("%d pushes rejected", sink.published.Load())
	}

	r := &Report{Telemetry: &res}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"instrumentation overhead on Pack's CPU per segment", "production sampling (10%)", "every trace sampled"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Telemetry map[string]any `json:"telemetry_overhead"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cpu_us_per_segment_off", "sampled", "all"} {
		if _, ok := back.Telemetry[k]; !ok {
			t.Errorf("JSON telemetry_overhead lacks %q: %v", k, back.Telemetry)
		}
	}
	if s, _ := back.Telemetry["sampled"].(map[string]any); s["overhead_pct_median"] == nil || s["overhead_pct_ci95_hi"] == nil {
		t.Errorf("JSON sampled = %v, want the median and its interval", s)
	}
}

// TestTelemetryTargets: the production setting's median is judged against
// 3%; an interval that straddles 3% is explained.
func TestTelemetryTargets(t *testing.T) {
	for _, tc := range []struct {
		name     string
		med, hi  float64
		met      bool
		wantNote bool
	}{
		{"well under", 0.8, 2.1, true, false},
		{"median under, interval over", 1.5, 4.2, true, true},
		{"over, interval straddling", 3.4, 5, false, true},
		{"clearly over", 5, 7, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &TelemetryOverhead{Sampled: OverheadVariant{MedianPct: Num(tc.med), CILoPct: Num(tc.med - 1.5), CIHiPct: Num(tc.hi)}}
			got := o.targets()
			if len(got) != 1 {
				t.Fatalf("%d targets", len(got))
			}
			if got[0].Met != tc.met || (got[0].Note != "") != tc.wantNote {
				t.Errorf("target %+v, want met %v, note %v", got[0], tc.met, tc.wantNote)
			}
			if !strings.Contains(got[0].Name, "production sampling") || got[0].Want != "< 3%" {
				t.Errorf("target %q want %q", got[0].Name, got[0].Want)
			}
		})
	}
	if (*TelemetryOverhead)(nil).targets() != nil {
		t.Error("targets without the step")
	}
	r := &Report{Telemetry: &TelemetryOverhead{Sampled: OverheadVariant{MedianPct: 1}}}
	found := false
	for _, tg := range targets(r) {
		found = found || strings.HasPrefix(tg.Name, "instrumentation overhead")
	}
	if !found {
		t.Error("targets(report) lacks the instrumentation overhead")
	}
}

func TestWithTraceparent(t *testing.T) {
	body := pushBody("1", 7, "8f3c1a52-6a55-4a6e-9d41-1f4a5e2b7c90", 3, "AAAA")
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	var m struct {
		Message struct {
			Attributes map[string]string `json:"attributes"`
		} `json:"message"`
	}
	if err := json.Unmarshal(withTraceparent(body, tp), &m); err != nil {
		t.Fatal(err)
	}
	if a := m.Message.Attributes; a["traceparent"] != tp || a["segment_id"] != "3" || len(a) != 4 {
		t.Errorf("attributes %v", a)
	}
	if err := json.Unmarshal(markReplay(body, 'b'), &m); err != nil {
		t.Fatal(err)
	}
	if id := m.Message.Attributes["replay_id"]; id != "bf3c1a52-6a55-4a6e-9d41-1f4a5e2b7c90" {
		t.Errorf("marked replay id %q", id)
	}
	if !strings.Contains(string(body), `"replay_id":"8f3c`) {
		t.Error("markReplay changed its input")
	}
}
