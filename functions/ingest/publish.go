package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

// message is one segment message for the segments topic.
type message struct {
	attrs map[string]string
	data  []byte
}

// Publisher publishes segment messages and waits until Pub/Sub has accepted
// them, so an SDK is told "stored" only for what will reach Pack. With
// DeliverFirst it hands each message to Pack directly first and publishes
// only what Pack did not store (deliver.go).
type Publisher struct {
	pub     *pubsub.Publisher
	timeout time.Duration
	direct  *Direct // nil: publish everything (see DeliverFirst)
}

// NewPublisher returns a Publisher over pub (clients.Publisher opens one);
// every request's publish is bounded by timeout.
func NewPublisher(pub *pubsub.Publisher, timeout time.Duration) *Publisher {
	// A request waits for its own messages; batching across requests only
	// adds latency to each.
	pub.PublishSettings.DelayThreshold = time.Millisecond
	return &Publisher{pub: pub, timeout: timeout}
}

// Publish publishes msgs and returns nil once every one was accepted. On an
// error some may have been accepted; the SDK's retry then repeats them and
// Pack drops the repeats (same segment identity).
func (p *Publisher) Publish(ctx context.Context, msgs []message) error {
	if p.direct != nil {
		if msgs = p.direct.deliverAll(ctx, msgs); len(msgs) == 0 {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	results := make([]*pubsub.PublishResult, len(msgs))
	for i, m := range msgs {
		results[i] = p.pub.Publish(ctx, &pubsub.Message{Data: m.data, Attributes: m.attrs})
	}
	var errs []error
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("publish %d segment message(s): %w: %w", len(msgs), errUnavailable, err)
	}
	return nil
}
