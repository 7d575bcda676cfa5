package serve

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/shred"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkCompactedRead reads a compacted replay whole: segments of the
// bench's default sizes (gzip, median 20 KB compressed), each packed into
// its own object as a live replay's are, then re-packed into one object by
// the sweep's compaction pass, with storage latency on every read and
// Serve's production settings. Where its time goes (decrypting,
// decompressing, writing) is what -cpuprofile shows.
//
//	go test ./functions/serve/ -run '^$' -bench BenchmarkCompactedRead -benchtime 5x
//
// Metrics per request: total-ms, ttfb-ms, reads, and the JSON written per
// second.
func BenchmarkCompactedRead(b *testing.B) {
	const (
		segments = 300
		latency  = 20 * time.Millisecond
	)
	e := newEnv(b, defaults())
	rng := rand.New(rand.NewPCG(41, 42))
	id := uuid.New()
	sizes := workload.DefaultSizes()
	segs := make([]seg, segments)
	for i := range segs {
		gz, raw := workload.CompressedSegment(rng, i, 1_700_000_000_000+int64(i)*5000, sizes.Sample(rng))
		segs[i] = seg{project: 1, replay: id, id: i, raw: raw, payload: gz}
	}
	packAged(b, e.d, 1, time.Hour, segs)
	svc := shred.New(shred.Config{
		OrphanGrace: time.Hour, SweepBatch: 1000, SweepBudget: time.Minute,
		DeleteParallelism: 16, CompactIdle: time.Nanosecond, CompactMaxBytes: 1 << 30,
	}, e.d.DB, e.d.Blobs, auth.NewVerifier(testSecret, auth.Policy{}))
	if rep, _, err := svc.Compact(context.Background(), time.Now().Add(time.Minute)); err != nil || rep.ReplaysCompacted != 1 {
		b.Fatalf("compact: %+v, %v", rep, err)
	}
	rows := segmentRows(b, e.d, 1, id)
	if n := distinctBlobs(rows); n != 1 {
		b.Fatalf("compacted replay lies in %d objects", n)
	}
	var stored int64
	for _, r := range rows {
		stored += r.ByteStop - r.ByteStart
	}
	b.Logf("%d segments, %d sealed bytes in one object; read latency %v", len(rows), stored, latency)
	tok := token(b, 1)
	cfg := ConfigFrom(&config.Serve{CoalesceGapBytes: 1 << 20, MaxReadBytes: 16 << 20, ReadParallelism: 32, MaxInflightBytes: 512 << 20})
	st := testenv.NewCountingStore(e.d.Blobs, latency)
	url := recordingURL(e.server(cfg, nil, st, nil), 1, id, "")
	var ttfb, total time.Duration
	var n, size int
	for b.Loop() {
		first, all, body := fetchTimed(b, url, tok)
		ttfb += first
		total += all
		size = len(body)
		n++
	}
	b.ReportMetric(float64(ttfb.Microseconds())/1000/float64(n), "ttfb-ms")
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "total-ms")
	b.ReportMetric(float64(st.Counts().ClassB)/float64(n), "reads/op")
	b.ReportMetric(float64(size)/1e6/(total.Seconds()/float64(n)), "MB/s")
}
