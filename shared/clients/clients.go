// Package clients opens the production clients the functions share (the
// database pool, the GCS store, the KMS wrapper) from their config, and
// registers each one's Close on a closer.Stack, so every function's Build is
// only its own wiring.
package clients

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/store"
)

// Storage opens the database and the blob bucket. Locally
// STORAGE_EMULATOR_HOST (read by the storage library) points GCS at
// fake-gcs-server; opts go to the storage client.
func Storage(ctx context.Context, db config.DB, st config.Storage, c *closer.Stack, opts ...option.ClientOption) (*store.DB, *blob.GCS, error) {
	return storage(ctx, db, st, c, nil, opts...)
}

func storage(ctx context.Context, db config.DB, st config.Storage, c *closer.Stack, dbOpts []store.Option, opts ...option.ClientOption) (*store.DB, *blob.GCS, error) {
	d, err := store.Open(ctx, db, dbOpts...)
	if err != nil {
		return nil, nil, err
	}
	c.Add(d.Close)
	gcs, err := blob.NewGCSClient(ctx, opts...)
	if err != nil {
		return nil, nil, err
	}
	c.Add(func() { gcs.Close() })
	return d, blob.NewGCS(gcs, st.Bucket, st.GCSTimeout), nil
}

// KMS opens the Cloud KMS wrapper of the root key (KMS_ENDPOINT points it
// at the local server).
func KMS(ctx context.Context, cfg config.KMS, c *closer.Stack, opts ...option.ClientOption) (*crypt.KMS, error) {
	kc, err := crypt.NewKMSClient(ctx, cfg.KMSEndpoint, opts...)
	if err != nil {
		return nil, err
	}
	c.Add(func() { kc.Close() })
	return crypt.NewKMS(kc, cfg.KMSKey, cfg.KMSTimeout), nil
}

// Publisher opens a Pub/Sub publisher of topic (an ID or a full
// projects/P/topics/T name) in project; PUBSUB_EMULATOR_HOST, read by the
// library, points it at the emulator. Closing it flushes what it holds.
func Publisher(ctx context.Context, project, topic string, c *closer.Stack) (*pubsub.Publisher, error) {
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	c.Add(func() { ps.Close() })
	pub := ps.Publisher(topic)
	c.Add(pub.Stop)
	return pub, nil
}
