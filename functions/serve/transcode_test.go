package serve

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// packLevel packs every segment of a recording (gzip, as a browser sends
// it) under replay with Pack transcoding at level, or storing as sent when
// level is 0.
func packLevel(t testing.TB, d *testenv.Deps, replay uuid.UUID, raw [][]byte, level segment.Level) {
	t.Helper()
	p := packer.New(packer.Config{
		FlushBytes: 64 << 20, FlushSegments: 100, FlushAge: 100 * time.Millisecond,
		MaxConcurrency: 100_000, MaxBufferBytes: 1 << 30,
		FlushTimeout: 60 * time.Second, Limits: segment.Limits{MaxDecompressed: 16 << 20},
		Level: level,
	}, d.DB, d.Blobs, d.Keyring(), failReject{t})
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, len(raw))
	for i, r := range raw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			attrs := map[string]string{"project_id": "1", "replay_id": replay.String(), "segment_id": strconv.Itoa(i)}
			res, err := p.Ingest(context.Background(), packer.Message{ID: fmt.Sprint(replay, i), Data: workload.Gzip(r), Attributes: attrs})
			if err == nil && res != packer.Stored {
				err = fmt.Errorf("segment %d: %s", i, res)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestServeTranscoded reads a real-shaped recording that Pack transcoded to
// zstd back through Serve: every event of every segment, in order, as
// sent.
func TestServeTranscoded(t *testing.T) {
	e := newEnv(t, defaults())
	raw := workload.Recording(rand.New(rand.NewPCG(16, 4)), 30, 20<<10, 200<<10, 1_700_000_000_000)
	id := uuid.New()
	packLevel(t, e.d, id, raw, segment.LevelBetter)
	for _, r := range segmentRows(t, e.d, 1, id) {
		if r.Encoding != segment.Zstd {
			t.Fatalf("segment %s stored as %s, want zstd", r.ID, r.Encoding)
		}
	}
	res := get(t, recordingURL(e.url, 1, id, ""), token(t, 1))
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %v", res.StatusCode, err)
	}
	var want []string
	for _, r := range raw {
		want = append(want, compactEvents(t, r)...)
	}
	if got := compactEvents(t, body); !slices.Equal(got, want) {
		t.Fatalf("Serve returned %d events, want the %d sent", len(got), len(want))
	}
}

// BenchmarkServeTranscoded reads the same real-shaped recording stored as
// sent (gzip) and transcoded (zstd better), alternating in one loop so that
// the machine's load falls on both alike, with storage latency added, and
// reports each one's time to first byte and total.
//
//	go test ./functions/serve/ -run '^$' -bench BenchmarkServeTranscoded -benchtime 20x
func BenchmarkServeTranscoded(b *testing.B) {
	e := newEnv(b, defaults())
	raw := workload.Recording(rand.New(rand.NewPCG(16, 5)), 300, 20<<10, 200<<10, 1_700_000_000_000)
	sent, transcoded := uuid.New(), uuid.New()
	packLevel(b, e.d, sent, raw, 0)
	packLevel(b, e.d, transcoded, raw, segment.LevelBetter)
	url := e.server(defaults(), nil, testenv.NewCountingStore(e.d.Blobs, 10*time.Millisecond), nil)
	tok := token(b, 1)
	var ttfb, total [2]time.Duration
	n := 0
	for b.Loop() {
		for i, id := range []uuid.UUID{sent, transcoded} {
			first, all, _ := fetchTimed(b, recordingURL(url, 1, id, ""), tok)
			ttfb[i] += first
			total[i] += all
		}
		n++
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	b.ReportMetric(ms(ttfb[0]), "sent-ttfb-ms")
	b.ReportMetric(ms(ttfb[1]), "transcoded-ttfb-ms")
	b.ReportMetric(ms(total[0]), "sent-total-ms")
	b.ReportMetric(ms(total[1]), "transcoded-total-ms")
}
