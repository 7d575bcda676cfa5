package packer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// Hot paths of Pack besides validation (shared/segment) and sealing
// (shared/crypt): taking the push request, once per segment, and the
// flush, once per batch. Compare runs with benchstat; `replayvault-dev bench`
// measures the whole function under load.

// hotReject refuses nothing: the benchmarks send valid segments only.
type hotReject struct{ tb testing.TB }

func (r hotReject) Reject(_ context.Context, attrs map[string]string, _ []byte, reason string) error {
	r.tb.Errorf("unexpected reject %s of %v", reason, attrs)
	return nil
}

// BenchmarkPushDecode serves one Pub/Sub push request (JSON with the
// payload in base64) over loopback HTTP and decodes its message, the way
// Pack's entry point does: as an HTTP function that reads the body itself
// (ReadPush, DecodePush), and, for comparison, as the CloudEvent function
// it was, where functions-framework turns a plain push into a CloudEvent
// (unmarshalling and marshalling it with reflection) and the CloudEvents
// SDK parses that before the same DecodePush. Both run in
// functions-framework's server on the same client; plain is the body a push
// subscription sends, binary the same body with ce-* headers (Eventarc).
func BenchmarkPushDecode(b *testing.B) {
	ctx := context.Background()
	var bad atomic.Int64
	check := func(body []byte) {
		if m, err := DecodePush(body); err != nil || len(m.Data) == 0 {
			bad.Add(1)
		}
	}
	if err := funcframework.RegisterHTTPFunctionContext(ctx, "/http", func(w http.ResponseWriter, r *http.Request) {
		body, err := ReadPush(r, segment.Limits{})
		if err != nil {
			bad.Add(1)
		}
		check(body)
	}); err != nil {
		b.Fatal(err)
	}
	if err := funcframework.RegisterCloudEventFunctionContext(ctx, "/projects/p/topics/t", func(_ context.Context, e event.Event) error {
		check(e.Data())
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	go func() { _ = funcframework.StartHostPort("127.0.0.1", port) }()
	base := "http://127.0.0.1:" + port
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("functions framework did not listen")
		}
	}
	for _, size := range []int{20 << 10, 300 << 10} {
		payload := make([]byte, size)
		_, _ = rand.Read(payload)
		body := fmt.Appendf(nil, `{"subscription":"projects/p/subscriptions/s","message":{"messageId":"1","publishTime":"2026-01-01T00:00:00Z","attributes":{"project_id":"7","replay_id":"%s","segment_id":"3"},"data":"%s"}}`,
			uuid.NewString(), base64.StdEncoding.EncodeToString(payload))
		for _, c := range []struct {
			name, path string
			ce         bool
		}{
			{"HTTP/plain", "/http", false},
			{"HTTP/binary", "/http", true},
			{"CloudEvent/plain", "/projects/p/topics/t", false},
			{"CloudEvent/binary", "/projects/p/topics/t", true},
		} {
			b.Run(fmt.Sprintf("%dKB/%s", size>>10, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					req, _ := http.NewRequest(http.MethodPost, base+c.path, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					if c.ce {
						req.Header.Set("Ce-Specversion", "1.0")
						req.Header.Set("Ce-Id", "1")
						req.Header.Set("Ce-Source", "//pubsub.googleapis.com/projects/p/topics/t")
						req.Header.Set("Ce-Type", "google.cloud.pubsub.topic.v1.messagePublished")
					}
					resp, err := hc.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 || bad.Load() > 0 {
						b.Fatalf("status %d, %d bad decodes", resp.StatusCode, bad.Load())
					}
				}
			})
		}
	}
}

// discardStore takes uploads and drops them, so that BenchmarkFlush counts
// the packer's own work and allocations (and the database's time), not an
// in-process fake GCS server's.
type discardStore struct{ blob.Store }

func (discardStore) Create(context.Context, string, ...[]byte) error { return nil }

// BenchmarkFlush assembles one full batch of sealed segments into one
// object and commits its rows to PostgreSQL: 250 segments of 30 KB or
// 1,000 of 8 KB, as FLUSH_BYTES (8 MiB) and FLUSH_SEGMENTS (1,000) cut them.
func BenchmarkFlush(b *testing.B) {
	d := testenv.NewDeps(b)
	ctx := context.Background()
	cfg := Config{
		FlushBytes: 8 << 20, FlushSegments: 1000, FlushAge: time.Hour, MaxConcurrency: 1000,
		MaxBufferBytes: 256 << 20, FlushTimeout: time.Minute,
	}
	p := New(cfg, d.DB, discardStore{}, d.Keyring(), hotReject{b})
	b.Cleanup(p.Close)
	kek, err := p.keys.Current(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, c := range []struct{ n, size int }{{1, 30 << 10}, {250, 30 << 10}, {1000, 8 << 10}} {
		gz, _ := workload.CompressedSegment(rng, 1, 1_700_000_000_000, c.size)
		info, err := segment.Validate(gz, segment.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		sealed, err := crypt.Seal(kek, []byte("aad"), gz)
		if err != nil {
			b.Fatal(err)
		}
		n := c.n
		b.Run(fmt.Sprintf("%dx%dKB", n, c.size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n * len(sealed.Ciphertext)))
			for b.Loop() {
				// Fresh identities each time: a redelivered batch takes the
				// cheaper duplicate path.
				b.StopTimer()
				bt := newBatch(segment.DefaultRetentionDays, time.Now())
				for i := range n {
					bt.addEntry(&entry{
						id:         segment.ID{ProjectID: 1 + int64(i%20), ReplayID: uuid.New(), SegmentID: i, Type: segment.DefaultType},
						retention:  segment.DefaultRetentionDays,
						info:       info,
						encoding:   info.Encoding,
						ciphertext: sealed.Ciphertext,
						wrappedDEK: sealed.WrappedDEK,
						kekID:      kek.ID,
					})
				}
				b.StartTimer()
				p.flush(bt)
				if bt.err != nil {
					b.Fatal(bt.err)
				}
			}
			b.ReportMetric(float64(n), "segments/op")
		})
	}
}

// BenchmarkPackCPU measures Pack's CPU per segment against the work it
// cannot avoid, in one run: each op pushes 1,000 segments of the bench's
// size distribution (one in 16 a replay's first, with its full snapshot)
// concurrently through ServeHTTP into a packer with the production
// defaults (slices derived, issues detected), and then runs on every core
// the CPU-bound limit's work (Prepare, as replayvault-dev bench's limit.go
// does) on the same payloads. Each op does so for both forms of request,
// one after the other (Ingest's direct form, Pack's main path, and the
// Pub/Sub push that what spills arrives in; each first every other op),
// each followed by the limit, so both ratios come from the same run. It reports
// process CPU per segment of each and limit ÷ pack for each form, the
// bench's ingest.limit_fraction without HTTP transport, I/O latency or the
// stand-ins (uploads are dropped: an in-process GCS stand-in's CPU would
// count here; PostgreSQL runs in its own process).
func BenchmarkPackCPU(b *testing.B) {
	d := testenv.NewDeps(b)
	ctx := context.Background()
	cfg := packCPUConfig()
	p := New(cfg, d.DB, discardStore{}, d.Keyring(), hotReject{b})
	b.Cleanup(p.Close)
	if _, err := p.keys.Current(ctx); err != nil {
		b.Fatal(err)
	}
	const n = 1000
	rng := mrand.New(mrand.NewPCG(5, 6))
	sizes := workload.DefaultSizes()
	payloads := make([][]byte, n)
	for i := range payloads {
		seg := 1
		if i%16 == 0 {
			seg = 0
		}
		payloads[i], _ = workload.CompressedSegment(rng, seg, 1_700_000_000_000, sizes.Sample(rng))
	}
	round := func(direct bool) time.Duration {
		bodies := make([][]byte, n)
		replay := uuid.New()
		for i := range bodies {
			m := message(1+int64(i%20), replay, i, payloads[i])
			if direct {
				bodies[i] = directBody(b, m)
			} else {
				bodies[i], _ = json.Marshal(pushBody(m))
			}
		}
		request := rawPush
		if direct {
			request = directRequest
		}
		return serveAll(b, p, request, bodies)
	}
	// The limit: Pack's own per-segment work (Prepare), on a packer with
	// the same settings and keys, on every core.
	lp := New(cfg, nil, nil, p.keys, hotReject{b})
	limit := func() time.Duration {
		before := cpuTime()
		var next atomic.Int64
		var wg sync.WaitGroup
		replay := uuid.New()
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
					if err := lp.Prepare(ctx, message(1, replay, int(i), payloads[i])); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return cpuTime() - before
	}
	round(false) // warm: connections, statements
	round(true)
	var cpuDirect, cpuPush, cpuLimit time.Duration
	for i := 0; b.Loop(); i++ {
		// Each form goes first every other op.
		for _, direct := range [][2]bool{{true, false}, {false, true}}[i%2] {
			if direct {
				cpuDirect += round(true)
			} else {
				cpuPush += round(false)
			}
			cpuLimit += limit()
		}
	}
	per := func(d time.Duration, rounds int) float64 { return float64(d.Nanoseconds()) / float64(n*rounds) }
	perDirect, perPush, perLimit := per(cpuDirect, b.N), per(cpuPush, b.N), per(cpuLimit, 2*b.N)
	b.ReportMetric(perDirect, "cpu-ns/seg-direct")
	b.ReportMetric(perPush, "cpu-ns/seg-pubsub")
	b.ReportMetric(perLimit, "cpu-ns/seg-limit")
	b.ReportMetric(perLimit/perDirect, "limit/direct")
	b.ReportMetric(perLimit/perPush, "limit/pubsub")
}

// packCPUConfig is the packer's configuration in the benchmarks of Pack's
// whole CPU per segment: production's flush thresholds, slices derived,
// long-kept segments transcoded.
func packCPUConfig() Config {
	return Config{
		FlushBytes: 8 << 20, FlushSegments: 1000, FlushAge: 2 * time.Second, MaxConcurrency: 1000,
		MaxBufferBytes: 512 << 20, FlushTimeout: time.Minute, DeriveSlices: true, TranscodeMinRetention: 365,
	}
}

// serveAll hands every body, made a request by request, to p's ServeHTTP
// at once, each on its own goroutine as concurrent pushes are, fails b on
// an answer other than 200 (which Pack gives once the segment's batch is
// committed), and returns the process CPU time this took.
func serveAll(b *testing.B, p *Packer, request func([]byte) *http.Request, bodies [][]byte) time.Duration {
	before := cpuTime()
	var wg sync.WaitGroup
	for _, body := range bodies {
		wg.Go(func() {
			if code := serve(p, request(body)); code != http.StatusOK {
				b.Errorf("status %d", code)
			}
		})
	}
	wg.Wait()
	return cpuTime() - before
}
