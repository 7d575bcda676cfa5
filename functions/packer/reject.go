package packer

import (
	"context"
	"fmt"
	"maps"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/replayvault/replayvault/shared/derrors"
)

// PubSubRejecter publishes rejected messages to the reject topic with their
// original attributes plus reject_reason.
type PubSubRejecter struct {
	pub     *pubsub.Publisher
	timeout time.Duration
}

// NewPubSubRejecter returns a Rejecter publishing with pub (the reject
// topic's publisher; its owner stops it), waiting at most timeout per
// message.
func NewPubSubRejecter(pub *pubsub.Publisher, timeout time.Duration) *PubSubRejecter {
	return &PubSubRejecter{pub: pub, timeout: timeout}
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
		return fmt.Errorf("publish to reject topic: %w: %w", derrors.Unavailable, err)
	}
	return nil
}
