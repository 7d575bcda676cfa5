package packer

import (
	"context"
	"fmt"
	"maps"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

// PubSubRejecter publishes rejected messages to the reject topic with their
// original attributes plus reject_reason.
type PubSubRejecter struct {
	pub     *pubsub.Publisher
	timeout time.Duration
}

// NewPubSubRejecter returns a Rejecter publishing to topic (an ID or a
// full projects/P/topics/T name).
func NewPubSubRejecter(client *pubsub.Client, topic string, timeout time.Duration) *PubSubRejecter {
	return &PubSubRejecter{pub: client.Publisher(topic), timeout: timeout}
}

// Reject publishes and waits for the server's ack.
func (r *PubSubRejecter) Reject(ctx context.Context, attrs map[string]string, data []byte, reason string) error {
	a := maps.Clone(attrs)
	if a == nil {
		a = map[string]string{}
	}
	a["reject_reason"] = reason
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if _, err := r.pub.Publish(ctx, &pubsub.Message{Data: data, Attributes: a}).Get(ctx); err != nil {
		return fmt.Errorf("publish to reject topic: %w", err)
	}
	return nil
}

// Stop flushes and stops the publisher.
func (r *PubSubRejecter) Stop() { r.pub.Stop() }
