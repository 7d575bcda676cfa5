package packer

import (
	"context"

	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
)

// Build connects every dependency named by cfg and returns a ready Packer
// plus a function that flushes it and releases the clients.
func Build(ctx context.Context, cfg *config.Pack) (*Packer, func(), error) {
	return closer.Build(func(c *closer.Stack) (*Packer, error) {
		db, blobs, err := clients.Storage(ctx, cfg.DB, cfg.Storage, c)
		if err != nil {
			return nil, err
		}
		wrapper, err := clients.KMS(ctx, cfg.KMS, c)
		if err != nil {
			return nil, err
		}
		pub, err := clients.Publisher(ctx, cfg.GoogleCloudProject, cfg.RejectTopic, c)
		if err != nil {
			return nil, err
		}
		keys := crypt.NewKeyring(wrapper, func(ctx context.Context, k *crypt.KEK) error {
			return db.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped)
		}, cfg.KEKRotate)
		// Rules are built first so that they close after the packer (the
		// stack closes in reverse).
		rs, err := BuildRules(ctx, cfg.Rules, db, blobs, c)
		if err != nil {
			return nil, err
		}
		p := New(ConfigFrom(cfg), db, blobs, keys, NewPubSubRejecter(pub, cfg.PubSubTimeout))
		p.UseRules(rs)
		c.Add(p.Close)
		return p, nil
	})
}
