package packer

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/store"
)

// Build connects every dependency named by cfg and returns a ready Packer
// plus a function that flushes it and releases the clients.
func Build(ctx context.Context, cfg *config.Pack) (_ *Packer, _ func(), err error) {
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
	gcs, err := blob.NewGCSClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.Add(func() { gcs.Close() })
	kmsClient, err := crypt.NewKMSClient(ctx, cfg.KMSEndpoint)
	if err != nil {
		return nil, nil, err
	}
	c.Add(func() { kmsClient.Close() })
	ps, err := pubsub.NewClient(ctx, cfg.GoogleCloudProject)
	if err != nil {
		return nil, nil, fmt.Errorf("pubsub client: %w", err)
	}
	c.Add(func() { ps.Close() })
	wrapper := crypt.NewKMS(kmsClient, cfg.KMSKey, cfg.KMSTimeout)
	keys := crypt.NewKeyring(wrapper, func(ctx context.Context, k *crypt.KEK) error {
		return db.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped)
	}, cfg.KEKRotate)
	rej := NewPubSubRejecter(ps, cfg.RejectTopic, cfg.PubSubTimeout)
	c.Add(rej.Stop)
	p := New(ConfigFrom(cfg), db, blob.NewGCS(gcs, cfg.Bucket, cfg.GCSTimeout), keys, rej)
	c.Add(p.Close)
	return p, c.Close, nil
}
