package packer

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"

	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
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
	db, blobs, err := clients.Storage(ctx, cfg.DB, cfg.Storage, &c)
	if err != nil {
		return nil, nil, err
	}
	wrapper, err := clients.KMS(ctx, cfg.KMS, &c)
	if err != nil {
		return nil, nil, err
	}
	rej, err := BuildRejecter(ctx, cfg, &c)
	if err != nil {
		return nil, nil, err
	}
	keys := crypt.NewKeyring(wrapper, func(ctx context.Context, k *crypt.KEK) error {
		return db.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped)
	}, cfg.KEKRotate)
	// Rules are built first so that they close after the packer (the
	// stack closes in reverse).
	rs, err := BuildRules(ctx, cfg.Rules, db, blobs, &c)
	if err != nil {
		return nil, nil, err
	}
	p := New(ConfigFrom(cfg), db, blobs, keys, rej)
	p.UseRules(rs)
	c.Add(p.Close)
	return p, c.Close, nil
}

// BuildRejecter connects the reject topic's publisher named by cfg
// (PUBSUB_EMULATOR_HOST, read by the library, points it at the emulator).
func BuildRejecter(ctx context.Context, cfg *config.Pack, c *closer.Stack) (*PubSubRejecter, error) {
	ps, err := pubsub.NewClient(ctx, cfg.GoogleCloudProject)
	if err != nil {
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	c.Add(func() { ps.Close() })
	rej := NewPubSubRejecter(ps, cfg.RejectTopic, cfg.PubSubTimeout)
	c.Add(rej.Stop)
	return rej, nil
}
