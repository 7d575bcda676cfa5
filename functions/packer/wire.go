package packer

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/store"
)

// Build connects every dependency named by cfg and returns a ready Packer
// plus a function that flushes it and releases the clients.
func Build(ctx context.Context, cfg *config.Pack) (*Packer, func(), error) {
	db, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return nil, nil, err
	}
	gcs, err := blob.NewGCSClient(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	kmsClient, err := crypt.NewKMSClient(ctx, cfg.KMSEndpoint)
	if err != nil {
		gcs.Close()
		db.Close()
		return nil, nil, err
	}
	ps, err := pubsub.NewClient(ctx, cfg.GoogleCloudProject)
	if err != nil {
		kmsClient.Close()
		gcs.Close()
		db.Close()
		return nil, nil, fmt.Errorf("pubsub client: %w", err)
	}
	wrapper := crypt.NewKMS(kmsClient, cfg.KMSKey, cfg.KMSTimeout)
	keys := crypt.NewKeyring(wrapper, func(ctx context.Context, k *crypt.KEK) error {
		return db.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped)
	}, cfg.KEKRotate)
	rej := NewPubSubRejecter(ps, cfg.RejectTopic, cfg.PubSubTimeout)
	p := New(ConfigFrom(cfg), db, blob.NewGCS(gcs, cfg.Bucket, cfg.GCSTimeout), keys, rej)
	closeAll := func() {
		p.Close()
		rej.Stop()
		ps.Close()
		kmsClient.Close()
		gcs.Close()
		db.Close()
	}
	return p, closeAll, nil
}
