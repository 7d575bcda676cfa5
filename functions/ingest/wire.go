package ingest

import (
	"context"

	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/store"
)

// Build connects what cfg names (the database for keys, the segments
// topic, Pack for direct delivery) and returns a ready Server plus a function
// releasing the clients.
// PUBSUB_EMULATOR_HOST, read by the library, points Pub/Sub at the emulator.
func Build(ctx context.Context, cfg *config.Ingest) (*Server, func(), error) {
	return closer.Build(func(c *closer.Stack) (*Server, error) {
		db, err := store.Open(ctx, cfg.DB)
		if err != nil {
			return nil, err
		}
		c.Add(db.Close)
		pub, err := clients.Publisher(ctx, cfg.GoogleCloudProject, cfg.SegmentTopic, c)
		if err != nil {
			return nil, err
		}
		direct, err := directFrom(ctx, cfg, c)
		if err != nil {
			return nil, err
		}
		return New(ConfigFrom(cfg), db, NewPublisher(pub, cfg.PubSubTimeout).DeliverFirst(direct)), nil
	})
}
