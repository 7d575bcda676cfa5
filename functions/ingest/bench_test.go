package ingest

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkSegmentCPU is the per-segment CPU of Ingest's checks and framing
// for each way in (everything but the key lookup, which is cached, and the
// publish, which is I/O) beside Pack's per-segment CPU for the same segment
// (validation, zstd for plain payloads, sealing; not the upload or the
// transaction, so Pack's real cost is higher and the ratio an upper bound).
// The target is Ingest ≤ 1/4 of Pack: the ingest/pack metric.
func BenchmarkSegmentCPU(b *testing.B) {
	ctx := context.Background()
	kms := testenv.NewKMS(b)
	kc, err := crypt.NewKMSClient(ctx, kms.Endpoint())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { kc.Close() })
	kek, err := crypt.NewKEK(ctx, crypt.NewKMS(kc, kms.KeyName(), 10*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	s := New(Config{MaxBodyBytes: 10 << 20, MaxDecompressed: 64 << 20, KeyCacheTTL: time.Minute,
		KeyRate: 1, KeyBurst: 1, ProjectRate: 1, ProjectBurst: 1, RetentionDays: 90}, nil, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{20 << 10, 300 << 10} {
		raw := workload.Segment(rng, 1, 1_700_000_000_000, size)
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(raw)
		zw.Close()
		replayHex := strings.ReplaceAll(uuid.NewString(), "-", "")
		env := envelope(replayHex, 1, raw, true)
		var events []json.RawMessage
		if err := json.Unmarshal(raw, &events); err != nil {
			b.Fatal(err)
		}
		phBody := gzipBytes(snapshotBatch("tok", uuid.Must(uuid.NewV7()).String(), "w", events))
		phCVBody := gzipBytes(snapshotBatch("tok", uuid.Must(uuid.NewV7()).String(), "w", posthogCompress(b, events)))
		rrBody := workload.Gzip(raw)
		req := httptest.NewRequest("POST", "/", nil)
		id := segment.ID{ProjectID: 1, ReplayID: uuid.New(), SegmentID: 1, Type: segment.DefaultType}

		// pair runs Ingest's and Pack's work on the same segment alternately
		// and reports each one's CPU time of the benchmark's thread, so other
		// load on the machine does not skew the ratio.
		pair := func(name string, ingest, pack func() error) {
			b.Run(fmt.Sprintf("%s/%dKB", name, size>>10), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(raw)))
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var ing, pk time.Duration
				for b.Loop() {
					t0 := threadCPU()
					if err := ingest(); err != nil {
						b.Fatal(err)
					}
					t1 := threadCPU()
					if err := pack(); err != nil {
						b.Fatal(err)
					}
					ing += t1 - t0
					pk += threadCPU() - t1
				}
				n := float64(b.N)
				b.ReportMetric(float64(ing.Microseconds())/n, "ingest_cpu_us/op")
				b.ReportMetric(float64(pk.Microseconds())/n, "pack_cpu_us/op")
				b.ReportMetric(ing.Seconds()/pk.Seconds(), "ingest/pack")
			})
		}
		sentry := func() error {
			h, items, err := parseEnvelope(env)
			if err != nil {
				return err
			}
			_, err = s.sentryMessages(req, 1, h, items)
			return err
		}
		posthogOf := func(body []byte) func() error {
			return func() error {
				d := &decoder{s: s, budget: s.cfg.MaxDecompressed}
				batch, _, err := d.posthogBody(req, body)
				if err != nil {
					return err
				}
				_, err = d.snapshotSessions(batch, "")
				return err
			}
		}
		rrweb := func() error { return s.checkPayload(rrBody, "segment") }
		// Pack on what each way publishes: the zlib recording as sent
		// (sentry), plain JSON (posthog), gzip (rrweb).
		pack := func(data []byte) func() error {
			return func() error {
				info, err := segment.Validate(data, segment.Limits{MaxDecompressed: 64 << 20})
				if err != nil {
					return err
				}
				stored := data
				if info.Encoding == segment.Plain {
					stored = segment.Compress(data)
				}
				_, err = crypt.Seal(kek, id.AAD(), stored)
				return err
			}
		}
		pair("sentry", sentry, pack(z.Bytes()))
		pair("posthog", posthogOf(phBody), pack(raw))
		// posthog-js compresses full snapshots and mutations itself
		// ("cv"); Ingest expands them, so Pack gets the same plain JSON.
		pair("posthog-cv", posthogOf(phCVBody), pack(raw))
		// What Ingest would cost if Pack expanded the compressed events:
		// the body's gunzip and the cut, without the expansion.
		pair("posthog-cv-unexpanded", func() error {
			d := &decoder{s: s, budget: s.cfg.MaxDecompressed}
			_, _, err := d.posthogBody(req, phCVBody)
			return err
		}, pack(raw))
		pair("rrweb", rrweb, pack(rrBody))
	}
}

// threadCPU is the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

// posthogCompress compresses events as posthog-js does before sending
// ("cv":"2024-10"): a full snapshot's data, and a mutation's or style sheet
// rule's texts, attributes, removes and adds, each gzipped into a string
// of one character per byte.
func posthogCompress(tb testing.TB, events []json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(events))
	for i, raw := range events {
		var e map[string]json.RawMessage
		if err := json.Unmarshal(raw, &e); err != nil {
			tb.Fatal(err)
		}
		var typ int
		json.Unmarshal(e["type"], &typ)
		zip := func(v json.RawMessage) json.RawMessage {
			s, _ := json.Marshal(latin1(gzipBytes(v)))
			return s
		}
		switch typ {
		case 2:
			e["data"] = zip(e["data"])
		case 3:
			var data map[string]json.RawMessage
			json.Unmarshal(e["data"], &data)
			var source int
			json.Unmarshal(data["source"], &source)
			if source != 0 && source != 8 {
				out[i] = raw
				continue
			}
			for _, f := range compressedFields {
				if v, ok := data[f]; ok {
					data[f] = zip(v)
				}
			}
			e["data"], _ = json.Marshal(data)
		default:
			out[i] = raw
			continue
		}
		e["cv"] = json.RawMessage(`"2024-10"`)
		out[i], _ = json.Marshal(e)
	}
	return out
}
