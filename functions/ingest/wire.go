package ingest

import (
	"context"

	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/store"
)

// Build connects what cfg names (the database for keys, the segments
// topic, Pack's URL for direct delivery) and returns a ready Server plus a function releasing the clients.
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
		p := NewPublisher(pub, cfg.PubSubTimeout)
		if cfg.PackURL != "" {
			hc, err := PackClient(ctx, cfg.PackURL, directConns)
			if err != nil {
				return nil, err
			}
			c.Add(hc.CloseIdleConnections)
			p.DeliverFirst(NewDirect(hc, cfg.PackURL, cfg.GoogleCloudProject, cfg.SegmentTopic, cfg.PackTimeout, cfg.PackHoldBytes))
		}
		return New(ConfigFrom(cfg), db, p), nil
	})
}

// directConns is how many idle connections to Pack an instance keeps: a
// direct delivery holds one for about FLUSH_AGE.
const directConns = 256
