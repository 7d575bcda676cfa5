package serve

import (
	"context"
	"math/rand/v2"
	"syscall"
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
// The sub-benchmarks are compaction's modes: copy (COMPACT_ZSTD_LEVEL=off,
// segments stay gzip as uploaded) and zstd-<level> (compaction re-encodes
// them to zstd); compare their cpu-ms and total-ms within one run.
//
//	go test ./functions/serve/ -run '^$' -bench BenchmarkCompactedRead -benchtime 5x
//
// Metrics per request: total-ms, ttfb-ms, reads, the JSON written per
// second and the process CPU (Serve and the client; the storage stand-in
// runs apart). Per compaction: compact-ms and its CPU, and the sealed bytes
// before and after.
func BenchmarkCompactedRead(b *testing.B) {
	for _, mode := range []struct {
		name  string
		level string
	}{{"copy", "off"}, {"zstd-default", "default"}, {"zstd-better", "better"}} {
		b.Run(mode.name, func(b *testing.B) { benchCompactedRead(b, mode.level) })
	}
}

func benchCompactedRead(b *testing.B, level string) {
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
	shredCfg := shred.ConfigFrom(&config.Shred{
		OrphanGrace: time.Hour, SweepBatch: 1000, CompactIdle: time.Nanosecond, CompactMaxBytes: 1 << 30,
		CompactZstdLevel: level, Segments: config.Segments{MaxDecompressedBytes: 64 << 20},
	})
	svc := shred.New(shredCfg, e.d.DB, e.d.Blobs, auth.NewVerifier(testSecret, auth.Policy{}), shred.WithKEKs(e.d.KEKCache()))
	cpu0, t0 := processCPU(b), time.Now()
	rep, _, err := svc.Compact(context.Background(), time.Now().Add(time.Minute))
	if err != nil || rep.ReplaysCompacted != 1 {
		b.Fatalf("compact: %+v, %v", rep, err)
	}
	compactWall, compactCPU := time.Since(t0), processCPU(b)-cpu0
	rows := segmentRows(b, e.d, 1, id)
	if n := distinctBlobs(rows); n != 1 {
		b.Fatalf("compacted replay lies in %d objects", n)
	}
	b.Logf("%d segments, %d sealed bytes before compaction, %d after (%d re-encoded) in one object; compaction %v (CPU %v); read latency %v",
		len(rows), rep.BytesRead, rep.BytesCopied, rep.SegmentsReencoded, compactWall, compactCPU, latency)
	tok := token(b, 1)
	cfg := ConfigFrom(&config.Serve{CoalesceGapBytes: 1 << 20, MaxReadBytes: 16 << 20, ReadParallelism: 32, MaxInflightBytes: 512 << 20})
	st := testenv.NewCountingStore(e.d.Blobs, latency)
	url := recordingURL(e.server(cfg, nil, st, nil), 1, id, "")
	var ttfb, total, cpu time.Duration
	var n, size int
	for b.Loop() {
		c0 := processCPU(b)
		first, all, body := fetchTimed(b, url, tok)
		cpu += processCPU(b) - c0
		ttfb += first
		total += all
		size = len(body)
		n++
	}
	b.ReportMetric(float64(ttfb.Microseconds())/1000/float64(n), "ttfb-ms")
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "total-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "cpu-ms")
	b.ReportMetric(float64(st.Counts().ClassB)/float64(n), "reads/op")
	b.ReportMetric(float64(size)/1e6/(total.Seconds()/float64(n)), "MB/s")
	b.ReportMetric(float64(compactWall.Microseconds())/1000, "compact-ms")
	b.ReportMetric(float64(compactCPU.Microseconds())/1000, "compact-cpu-ms")
	b.ReportMetric(float64(rep.BytesRead), "stored-before-B")
	b.ReportMetric(float64(rep.BytesCopied), "stored-after-B")
}

// processCPU is the CPU time this process has used (user + system).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
