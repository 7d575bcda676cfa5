package replayvault

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestIngestOverHTTP serves the registered Ingest function configured only
// through the environment, as deployed, sends one segment through its REST
// path and sees the message on the segments topic.
func TestIngestOverHTTP(t *testing.T) {
	dsn := testenv.NewDB(t)
	ps := testenv.NewPubSub(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := ps.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topic := "segments-" + uuid.NewString()[:8]
	sub := fmt.Sprintf("projects/%s/subscriptions/%s", ps.Project(), topic)
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: fmt.Sprintf("projects/%s/topics/%s", ps.Project(), topic)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: fmt.Sprintf("projects/%s/topics/%s", ps.Project(), topic)}); err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenURL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CreateIngestKey(ctx, store.IngestKey{PublicKey: "fnkey", ProjectID: 3}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"DATABASE_URL":         dsn,
		"GOOGLE_CLOUD_PROJECT": ps.Project(),
		"PUBSUB_EMULATOR_HOST": ps.Host(),
		"SEGMENT_TOPIC":        topic,
		"LOG_LEVEL":            "warn",
	} {
		t.Setenv(k, v)
	}
	url := startFunction(t, "Ingest")
	replay := uuid.New()
	resp, err := http.Post(fmt.Sprintf("%s/v1/projects/3/replays/%s/segments/0?key=fnkey", url, replay), "text/plain",
		bytes.NewReader([]byte(`[{"type":4,"data":{},"timestamp":1700000000000}]`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	var got map[string]string
	err = client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		got = m.Attributes
		rcancel()
	})
	if err != nil {
		t.Fatal(err)
	}
	if got["replay_id"] != replay.String() || got["project_id"] != "3" || got["source"] != "rrweb" {
		t.Errorf("attributes = %v", got)
	}
}
