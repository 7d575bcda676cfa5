package shred

import (
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// TestShredAndSweepMetrics shreds a replay over HTTP and runs the sweep
// twice, once out of budget, and reads the metrics back: the receipt and
// its segments, the request by route and status, the sweep's work, runs by
// outcome and the backlog each run left.
func TestShredAndSweepMetrics(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	e := newEnv(t, cfg, 50*time.Millisecond)
	tel, err := telemetry.Setup(ctx, telemetry.Config{Exporter: telemetry.ExporterMemory})
	if err != nil {
		t.Fatal(err)
	}
	opt, err := Telemetry(tel)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = New(cfg, e.d.DB, e.d.Blobs, auth.NewVerifier(testSecret, auth.Policy{}), opt)
	e.h = e.svc.Handler()

	rng := rand.New(rand.NewPCG(5, 6))
	shredded, expired := newReplay(rng, 7, 3), newReplay(rng, 7, 4)
	e.pack(t, packer.Stored, shredded, expired)
	if res := e.do(t, http.MethodDelete, "/v1/projects/7/replays/"+shredded.id.String(), token(t, 7, auth.ScopeDelete), ""); res.status != 200 {
		t.Fatalf("shred: %d %s", res.status, res.raw)
	}
	if _, err := e.d.DB.Pool.Exec(ctx, `UPDATE segments SET expires_at = now() - interval '1 minute' WHERE replay_id = $1`, expired.id); err != nil {
		t.Fatal(err)
	}

	snapshot := func() telemetry.Snapshot {
		s, err := tel.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	backlog := func(s telemetry.Snapshot) float64 { return s.Total(telemetry.MetricSweepBacklog) }

	// Out of budget: nothing done, all four expired rows left.
	broke := New(Config{SweepBudget: -time.Second, SweepBatch: 100, DeleteParallelism: 1}, e.d.DB, e.d.Blobs, auth.NewVerifier(testSecret, auth.Policy{}), opt)
	if rep, err := broke.Sweep(ctx); err != nil || rep.Complete {
		t.Fatalf("sweep without budget: %+v, %v", rep, err)
	}
	s := snapshot()
	if got := backlog(s); got != 4 {
		t.Errorf("backlog after a run out of budget = %v, want 4", got)
	}
	if n := s.Total(telemetry.MetricSweepRuns, "outcome=budget"); n != 1 {
		t.Errorf("runs{budget} = %v, want 1", n)
	}

	if rep, err := e.svc.Sweep(ctx); err != nil || !rep.Complete || rep.SegmentsExpired != 4 {
		t.Fatalf("sweep: %+v, %v; want complete with 4 expired", rep, err)
	}
	s = snapshot()
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"receipts{replays}", s.Total(telemetry.MetricShredReceipts, "kind=replays"), 1},
		{"segments shredded", s.Total(telemetry.MetricShredSegments), 3},
		{"delete_replay 200", s.Total(telemetry.MetricHTTPRequests, "function=shred", "route=delete_replay", "http.response.status_code=200"), 1},
		{"work{segments_expired}", s.Total(telemetry.MetricSweepWork, "kind=segments_expired"), 4},
		{"runs{done}", s.Total(telemetry.MetricSweepRuns, "outcome=done"), 1},
		{"backlog after a complete run", backlog(s), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
