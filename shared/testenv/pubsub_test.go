package testenv

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
)

func TestPubSub(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the Pub/Sub emulator (a JVM)")
	}
	ps := NewPubSub(t)
	if again := NewPubSub(t); again != ps {
		t.Error("NewPubSub started a second emulator in the same process")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	client, err := ps.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	suffix := randomHex(4)
	topic := fmt.Sprintf("projects/%s/topics/segments-%s", ps.Project(), suffix)
	sub := fmt.Sprintf("projects/%s/subscriptions/pack-%s", ps.Project(), suffix)
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: topic, AckDeadlineSeconds: 60,
	}); err != nil {
		t.Fatalf("create subscription: %v", err)
	}

	pub := client.Publisher(topic)
	defer pub.Stop()
	id, err := pub.Publish(ctx, &pubsub.Message{Data: []byte("segment 1"), Attributes: map[string]string{"replay": "r1"}}).Get(ctx)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}

	rctx, stop := context.WithCancel(ctx)
	var got *pubsub.Message
	err = client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		got = m
		stop()
	})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if got == nil {
		t.Fatal("Receive ended without a message")
	}
	if got.ID != id || string(got.Data) != "segment 1" || got.Attributes["replay"] != "r1" {
		t.Errorf("received id=%s data=%q attrs=%v; want id=%s data=%q replay=r1", got.ID, got.Data, got.Attributes, id, "segment 1")
	}
}

// TestStartPubSubStop checks that Stop leaves no emulator behind: gcloud
// spawns a JVM that outlives a plain kill of gcloud.
func TestStartPubSubStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the Pub/Sub emulator (a JVM)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ps, err := StartPubSub(ctx, t.TempDir(), "stop-test")
	if err != nil {
		t.Fatal(err)
	}
	pgid := ps.cmd.Process.Pid
	if !groupAlive(pgid) {
		t.Fatal("groupAlive is false for a running emulator")
	}
	if err := ps.Stop(); err != nil {
		t.Fatal(err)
	}
	if groupAlive(pgid) {
		t.Error("emulator processes still running after Stop")
	}
	c := http.Client{Timeout: time.Second}
	if resp, err := c.Get("http://" + ps.Host() + "/"); err == nil {
		resp.Body.Close()
		t.Error("emulator still answers after Stop")
	}
}
