package replayvault

import (
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestSIGTERMDrainsPack runs Pack as deployed (the production binary's
// function command) with a flush age far beyond the test, fills its buffer
// with held requests and sends SIGTERM, as Cloud Run does when it stops an
// instance. Every held request must be answered: 200 with its segment
// durable, or a retryable 503 with nothing stored; none may be left without
// an answer, and the process must exit cleanly inside Cloud Run's 10 s.
func TestSIGTERMDrainsPack(t *testing.T) {
	d := testenv.NewDeps(t)
	ps := testenv.NewPubSub(t)
	bin := filepath.Join(t.TempDir(), "replayvault")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/replayvault").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/replayvault: %v\n%s", err, out)
	}
	p, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(p)
	cmd := exec.Command(bin, "function")
	cmd.Env = append(os.Environ(), "FUNCTION_TARGET=Pack", "PORT="+port,
		"FLUSH_AGE=10m", "FLUSH_SEGMENTS=100000", "FLUSH_BYTES=200000000", "MAX_CONCURRENCY=1000")
	for k, v := range packEnv(t, d, ps) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	url := "http://127.0.0.1:" + port
	waitListening(t, "127.0.0.1:"+port)

	const n = 200
	rng := rand.New(rand.NewPCG(7, 7))
	replay := uuid.New()
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		payload := workload.Segment(rng, i, 1_700_000_000_000+int64(i)*1000, 2000)
		req := pushRequest(url, strconv.Itoa(i), payload, map[string]string{
			"project_id": "3", "replay_id": replay.String(), "segment_id": strconv.Itoa(i),
		})
		wg.Go(func() {
			resp, err := hc.Do(req)
			if err != nil {
				statuses[i] = -1
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	// Let the requests be validated, sealed and held; none can be answered
	// and nothing can be written before the signal.
	time.Sleep(3 * time.Second)
	if objs := countObjects(t, d); objs != 0 {
		t.Fatalf("%d objects written before SIGTERM with a 10-minute flush age", objs)
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("Pack exited with %v after SIGTERM, want 0", err)
		}
		t.Logf("Pack exited %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("Pack still running 10 s after SIGTERM (Cloud Run would kill it)")
	}
	wg.Wait()

	acked := map[int]bool{}
	tally := map[int]int{}
	for i, st := range statuses {
		tally[st]++
		switch st {
		case http.StatusOK:
			acked[i] = true
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("segment %d: status %d, want 200 or a retryable 503", i, st)
		}
	}
	if len(acked) < n/2 {
		t.Errorf("statuses %v: only %d of %d held requests were acked by the drain", tally, len(acked), n)
	}
	rows, err := d.DB.Pool.Query(t.Context(), `SELECT segment_id FROM segments WHERE project_id = 3 AND replay_id = $1`, replay)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int]bool{}
	for rows.Next() {
		var s int
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		stored[s] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range acked {
		if !stored[i] {
			t.Errorf("segment %d was acked but is not stored: lost", i)
		}
	}
	t.Logf("statuses %v; %d segments stored", tally, len(stored))
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after 30 s", addr)
}

func countObjects(t *testing.T, d *testenv.Deps) int {
	t.Helper()
	n := 0
	if err := d.Blobs.List(t.Context(), "", func(blob.Object) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// testWriter sends a child's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}
