package ingest

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"

	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/store"
)

// Build connects what cfg names (the database for keys, the segments
// topic) and returns a ready Server plus a function releasing the clients.
// PUBSUB_EMULATOR_HOST, read by the library, points Pub/Sub at the emulator.
func Build(ctx context.Context, cfg *config.Ingest) (_ *Server, _ func(), err error) {
	var c closer.Stack
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	db, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return nil, nil, err
	}
	c.Add(db.Close)
	ps, err := pubsub.NewClient(ctx, cfg.GoogleCloudProject)
	if err != nil {
		return nil, nil, fmt.Errorf("pubsub client: %w", err)
	}
	c.Add(func() { ps.Close() })
	pub := NewPublisher(ps, cfg.SegmentTopic, cfg.PubSubTimeout)
	c.Add(pub.Stop)
	return New(ConfigFrom(cfg), db, pub), c.Close, nil
}
