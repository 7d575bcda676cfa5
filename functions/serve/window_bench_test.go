package serve

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/shred"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/testenv"
)

// longReplay generates a two-hour recording: n segments of 5 s, a meta
// event and full snapshot every snapEvery segments (rrweb's checkout), and
// incremental events of about approxBytes per segment.
func longReplay(rng *rand.Rand, project int64, replay uuid.UUID, n, snapEvery, approxBytes int) []seg {
	segs := make([]seg, n)
	for i := range segs {
		base := windowStart + int64(i)*5000
		var evs []string
		if i%snapEvery == 0 {
			evs = append(evs,
				fmt.Sprintf(`{"type":4,"data":{"href":"https://example.test/","width":1280,"height":800},"timestamp":%d}`, base),
				fmt.Sprintf(`{"type":2,"data":{"node":{"type":0,"id":1,"childNodes":[{"type":3,"textContent":%q,"id":2}]}},"timestamp":%d}`,
					strings.Repeat("snapshot ", approxBytes/3), base))
		}
		size := 0
		for k := 0; size < approxBytes; k++ {
			ev := fmt.Sprintf(`{"type":3,"data":{"source":0,"texts":[{"id":2,"value":"%d %d %x"}]},"timestamp":%d}`,
				i, k, rng.Uint64(), base+int64(k*50%5000))
			size += len(ev)
			evs = append(evs, ev)
		}
		raw := []byte("[" + strings.Join(evs, ",") + "]")
		segs[i] = seg{project: project, replay: replay, id: i, raw: raw, payload: raw}
	}
	return segs
}

// BenchmarkWindowSeek measures what a player pays to show minute 90 of a
// two-hour replay (1,440 segments of 5 s, a snapshot every 5 minutes)
// with storage latency on every read: a window read (from_ts = minute 90,
// one minute) against reading the whole recording,
// which a player without windows must do before it can show minute 90.
// Then the same replay compacted by the sweep's pass, read whole.
//
//	go test ./functions/serve/ -run '^$' -bench BenchmarkWindowSeek -benchtime 5x
//
// Metrics per request: total-ms, ttfb-ms, bytes read from storage and
// reads.
func BenchmarkWindowSeek(b *testing.B) {
	const (
		segments  = 1440
		snapEvery = 60
		latency   = 10 * time.Millisecond
	)
	e := newEnv(b, defaults())
	rng := rand.New(rand.NewPCG(31, 32))
	id := uuid.New()
	// One object per segment, as a live replay's segments land: each in
	// the flush of its own moment.
	packAged(b, e.d, 1, time.Hour, longReplay(rng, 1, id, segments, snapEvery, 4000))
	rows := segmentRows(b, e.d, 1, id)
	b.Logf("%d segments in %d objects; read latency %v", len(rows), distinctBlobs(rows), latency)
	tok := token(b, 1)
	minute90 := windowStart + 90*60_000

	run := func(b *testing.B, query string) {
		st := testenv.NewCountingStore(e.d.Blobs, latency)
		url := recordingURL(e.server(defaults(), nil, st, nil), 1, id, query)
		var ttfb, total time.Duration
		n := 0
		for b.Loop() {
			first, all, _ := fetchTimed(b, url, tok)
			ttfb += first
			total += all
			n++
		}
		c := st.Counts()
		b.ReportMetric(float64(ttfb.Microseconds())/1000/float64(n), "ttfb-ms")
		b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "total-ms")
		b.ReportMetric(float64(c.BytesRead)/float64(n), "bytes-read/op")
		b.ReportMetric(float64(c.ClassB)/float64(n), "reads/op")
	}
	b.Run("full", func(b *testing.B) { run(b, "") })
	b.Run("window-minute-90", func(b *testing.B) {
		run(b, fmt.Sprintf("from_ts=%d&to_ts=%d", minute90, minute90+60_000))
	})
	b.Run("compacted-full", func(b *testing.B) {
		b.StopTimer()
		svc := shred.New(shred.Config{
			OrphanGrace: time.Hour, SweepBatch: 1000, SweepBudget: time.Minute,
			DeleteParallelism: 10, CompactIdle: time.Nanosecond, CompactMaxBytes: 1 << 30,
		}, e.d.DB, e.d.Blobs, auth.NewVerifier(testSecret, auth.Policy{}))
		if rep, _, err := svc.Compact(context.Background(), time.Now().Add(time.Minute)); err != nil || rep.ReplaysFailed != 0 {
			b.Fatalf("compact: %+v, %v", rep, err)
		}
		if n := distinctBlobs(segmentRows(b, e.d, 1, id)); n != 1 {
			b.Fatalf("compacted replay lies in %d objects", n)
		}
		b.StartTimer()
		run(b, "")
	})
}
