package ingest

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

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
// The target is Ingest ≤ 1/4 of Pack: compare ns/op of ingest/X with pack/X.
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
		rrBody := workload.Gzip(raw)
		req := httptest.NewRequest("POST", "/", nil)
		id := segment.ID{ProjectID: 1, ReplayID: uuid.New(), SegmentID: 1, Type: segment.DefaultType}

		run := func(name string, fn func() error) {
			b.Run(fmt.Sprintf("%s/%dKB", name, size>>10), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(raw)))
				for b.Loop() {
					if err := fn(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		run("ingest/sentry", func() error {
			h, items, err := parseEnvelope(env)
			if err != nil {
				return err
			}
			_, err = s.sentryMessages(req, 1, h, items)
			return err
		})
		run("ingest/posthog", func() error {
			d := &decoder{s: s, budget: s.cfg.MaxDecompressed}
			defer d.release()
			root, _, err := d.posthogBody(req, phBody)
			if err != nil {
				return err
			}
			_, err = d.snapshotSessions(root, "")
			return err
		})
		run("ingest/rrweb", func() error { return s.checkPayload(rrBody, "segment") })
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
		run("pack/sentry", pack(z.Bytes()))
		run("pack/posthog", pack(raw))
		run("pack/rrweb", pack(rrBody))
	}
}
