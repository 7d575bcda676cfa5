package packer

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// Hot paths of Pack besides validation (shared/segment) and sealing
// (shared/crypt): decoding the push envelope, once per segment, and the
// flush, once per batch. Compare runs with benchstat; `replayvault-dev bench`
// measures the whole function under load.

// hotReject refuses nothing: the benchmarks send valid segments only.
type hotReject struct{ tb testing.TB }

func (r hotReject) Reject(_ context.Context, attrs map[string]string, _ []byte, reason string) error {
	r.tb.Errorf("unexpected reject %s of %v", reason, attrs)
	return nil
}

// BenchmarkEventDecode decodes one Pub/Sub push CloudEvent (JSON with the
// payload in base64), as HandleEvent does for every segment: with
// decodeEvent, and with the SDK's reflective DataAs it replaced.
func BenchmarkEventDecode(b *testing.B) {
	for _, size := range []int{20 << 10, 300 << 10} {
		payload := make([]byte, size)
		_, _ = rand.Read(payload)
		body := fmt.Appendf(nil, `{"subscription":"projects/p/subscriptions/s","message":{"messageId":"1","attributes":{"project_id":"7","replay_id":"%s","segment_id":"3"},"data":"%s"}}`,
			uuid.NewString(), base64.StdEncoding.EncodeToString(payload))
		e := event.New()
		e.SetID("1")
		e.SetSource("//pubsub.googleapis.com/projects/p/topics/t")
		e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
		if err := e.SetData("application/json", body); err != nil {
			b.Fatal(err)
		}
		for _, dec := range []struct {
			name string
			fn   func(*pushData) error
		}{
			{"decodeEvent", func(d *pushData) error { return decodeEvent(e, d) }},
			{"DataAs", func(d *pushData) error { return e.DataAs(d) }},
		} {
			b.Run(fmt.Sprintf("%dKB/%s", size>>10, dec.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					var d pushData
					if err := dec.fn(&d); err != nil {
						b.Fatal(err)
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

func (discardStore) Create(context.Context, string, []byte) error { return nil }

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
