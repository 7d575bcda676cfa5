package packer

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkIngest drives the whole ingest path on the real local stand-ins
// (PostgreSQL, fake-gcs-server over HTTP, the KMS server): 1,000 concurrent
// requests per op, each validated, compressed, sealed and held until its
// batch (FLUSH_SEGMENTS=500) is committed. It reports segments/s; b.SetBytes
// makes MB/s the payload bytes accepted per second.
func BenchmarkIngest(b *testing.B) {
	d := testenv.NewDeps(b)
	cfg := Config{
		FlushBytes: 8 << 20, FlushSegments: 500, FlushAge: 2 * time.Second, MaxConcurrency: 1000,
		MaxBufferBytes: 256 << 20, FlushTimeout: time.Minute,
	}
	p := New(cfg, d.DB, d.Blobs, d.Keyring(), hotReject{b})
	b.Cleanup(p.Close)
	ctx := context.Background()
	const n = 1000
	rng := rand.New(rand.NewPCG(7, 7))
	payloads := make([][]byte, n)
	var total int64
	for i := range payloads {
		payloads[i] = workload.Gzip(workload.Segment(rng, i%50, 1_700_000_000_000, 2000+rng.IntN(20000)))
		total += int64(len(payloads[i]))
	}
	b.SetBytes(total)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		replays := make([]uuid.UUID, n/50)
		for i := range replays {
			replays[i] = uuid.New()
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := p.Ingest(ctx, message(1, replays[i/50], i%50, payloads[i])); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "segments/s")
	b.ReportMetric(float64(p.Stats().Flushes.Load())/float64(b.N), "objects/op")
	b.ReportMetric(float64(d.DBStats.Transactions.Load())/float64(b.N), "txns/op")
}
