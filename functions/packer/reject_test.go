package packer

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestBadInputGoesToRejectTopic sends permanently invalid messages and
// checks each is acked and lands on the (emulated) reject topic with its
// reason and original attributes, and that nothing is stored.
func TestBadInputGoesToRejectTopic(t *testing.T) {
	d := testenv.NewDeps(t)
	ps := testenv.NewPubSub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, sub, rej := rejectTopic(t, ctx, ps, "rejects")
	cfg := testConfig()
	cfg.Limits.MaxDecompressed = 1 << 20
	p := newPacker(t, d, cfg, rej)

	good := func() map[string]string {
		return map[string]string{"project_id": "5", "replay_id": uuid.NewString(), "segment_id": "0"}
	}
	with := func(k, v string) map[string]string {
		a := good()
		if v == "" {
			delete(a, k)
		} else {
			a[k] = v
		}
		return a
	}
	events := []byte(`[{"type":4,"timestamp":1700000000000}]`)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(events)
	zw.Close()
	truncated := gz.Bytes()[:gz.Len()-6]
	var bomb bytes.Buffer
	bw := gzip.NewWriter(&bomb)
	bw.Write([]byte("["))
	bw.Write(bytes.Repeat([]byte(" "), 8<<20))
	bw.Write([]byte("]"))
	bw.Close()

	tests := []struct {
		name   string
		attrs  map[string]string
		data   []byte
		reason string
	}{
		{"missing project", with("project_id", ""), events, segment.ReasonMissingProjectID},
		{"garbled project", with("project_id", "12x"), events, segment.ReasonBadProjectID},
		{"missing replay", with("replay_id", ""), events, segment.ReasonMissingReplayID},
		{"garbled replay", with("replay_id", "not-a-uuid"), events, segment.ReasonBadReplayID},
		{"missing segment", with("segment_id", ""), events, segment.ReasonMissingSegmentID},
		{"negative segment", with("segment_id", "-1"), events, segment.ReasonBadSegmentID},
		{"unknown retention", with("retention_days", "7"), events, segment.ReasonBadRetentionDays},
		{"unknown type", with("type", "video"), events, segment.ReasonBadType},
		{"not json", good(), []byte("hello world"), segment.ReasonNotJSON},
		{"json object", good(), []byte(`{"type":2}`), segment.ReasonNotArray},
		{"truncated gzip", good(), truncated, segment.ReasonBadCompression},
		{"decompression bomb", good(), bomb.Bytes(), segment.ReasonDecompressedTooLarge},
		{"empty payload", good(), nil, segment.ReasonEmptyPayload},
	}
	want := map[string]string{} // message marker -> reason
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			attrs := maps.Clone(tc.attrs)
			attrs["test_case"] = fmt.Sprint(i)
			want[fmt.Sprint(i)] = tc.reason
			m := Message{ID: fmt.Sprint(i), Data: tc.data, Attributes: attrs}
			if code := serve(p, pushRequest(t, m).WithContext(ctx)); code != http.StatusOK {
				t.Errorf("push: status %d, want 200 (ack)", code)
			}
		})
	}
	// A push body that is not a Pub/Sub message at all.
	if code := serve(p, rawPush([]byte(`"just a string"`)).WithContext(ctx)); code != http.StatusOK {
		t.Errorf("bad envelope: status %d, want 200 (ack)", code)
	}

	got := map[string]string{}
	var envelope bool
	var mu sync.Mutex
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	err := client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		if m.Attributes["reject_reason"] == "bad_envelope" {
			envelope = true
		} else {
			got[m.Attributes["test_case"]] = m.Attributes["reject_reason"]
		}
		if len(got) == len(tests) && envelope {
			rcancel()
		}
	})
	rcancel()
	if err != nil {
		t.Fatal(err)
	}
	for k, reason := range want {
		if got[k] != reason {
			t.Errorf("case %s: reject_reason %q, want %q", k, got[k], reason)
		}
	}
	if !envelope {
		t.Error("bad envelope did not reach the reject topic")
	}
	if n := count(t, d, `SELECT count(*) FROM segments`); n != 0 {
		t.Errorf("segment rows = %d, want 0", n)
	}
	if s := p.Stats().Rejected.Load(); s != int64(len(tests)+1) {
		t.Errorf("rejected = %d, want %d", s, len(tests)+1)
	}
}

// TestRejectPublishFailureNacks: when the reject topic cannot be reached the
// message is nacked, not dropped.
func TestRejectPublishFailureNacks(t *testing.T) {
	d := testenv.NewDeps(t)
	ps := testenv.NewPubSub(t)
	ctx := context.Background()
	client, err := ps.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pub := client.Publisher(fmt.Sprintf("projects/%s/topics/missing-%s", ps.Project(), uuid.NewString()[:8]))
	defer pub.Stop()
	rej := NewPubSubRejecter(pub, 5*time.Second)
	p := newPacker(t, d, testConfig(), rej)
	_, err = p.Ingest(ctx, Message{ID: "1", Data: []byte("nope"), Attributes: map[string]string{"project_id": "1"}})
	if err == nil {
		t.Fatal("Ingest acked a message whose reject publish failed")
	}
}

// rejectTopic makes a reject topic named after prefix on the emulator ps,
// with a subscription to read it, and returns a client, that subscription
// and a Rejecter publishing to the topic; all are closed at cleanup.
func rejectTopic(t *testing.T, ctx context.Context, ps *testenv.PubSub, prefix string) (*pubsub.Client, string, *PubSubRejecter) {
	t.Helper()
	client, err := ps.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	suffix := uuid.NewString()[:8]
	topic := fmt.Sprintf("projects/%s/topics/%s-%s", ps.Project(), prefix, suffix)
	sub := fmt.Sprintf("projects/%s/subscriptions/%s-%s", ps.Project(), prefix, suffix)
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic, AckDeadlineSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	pub := client.Publisher(topic)
	t.Cleanup(pub.Stop)
	return client, sub, NewPubSubRejecter(pub, 10*time.Second)
}
