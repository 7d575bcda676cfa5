package packer

import (
	"context"

	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// Build connects every dependency named by cfg and returns a ready Packer
// plus a function that flushes it and releases the clients. tel (nil: none)
// receives the metrics and traces of the packer and its clients.
func Build(ctx context.Context, cfg *config.Pack, tel *telemetry.Telemetry) (*Packer, func(), error) {
	return closer.Build(func(c *closer.Stack) (*Packer, error) {
		var m *telemetry.Pack
		if tel != nil {
			var err error
			if m, err = telemetry.NewPack(tel); err != nil {
				return nil, err
			}
		}
		db, blobs, err := clients.ObservedStorage(ctx, cfg.DB, cfg.Storage, c, tel)
		if err != nil {
			return nil, err
		}
		wrapper, err := clients.ObservedKMS(ctx, cfg.KMS, c, tel, m.KMS())
		if err != nil {
			return nil, err
		}
		pub, err := clients.Publisher(ctx, cfg.GoogleCloudProject, cfg.RejectTopic, c)
		if err != nil {
			return nil, err
		}
		keys := crypt.NewKeyring(wrapper, func(ctx context.Context, k *crypt.KEK) error {
			if err := db.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped); err != nil {
				return err
			}
			m.KEKRotated(ctx)
			return nil
		}, cfg.KEKRotate)
		// Rules are built first so that they close after the packer (the
		// stack closes in reverse).
		rs, err := BuildRules(ctx, cfg.Rules, db, blobs, c)
		if err != nil {
			return nil, err
		}
		p := New(ConfigFrom(cfg), db, blobs, keys, NewPubSubRejecter(pub, cfg.PubSubTimeout), WithTelemetry(tel, m))
		p.UseRules(rs)
		c.Add(p.Close)
		return p, nil
	})
}
