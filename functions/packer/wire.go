package packer

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"

	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// Build connects every dependency named by cfg and returns a ready Packer
// plus a function that flushes it and releases the clients. tel (nil: none)
// receives the metrics and traces of the packer and its clients.
func Build(ctx context.Context, cfg *config.Pack, tel *telemetry.Telemetry) (_ *Packer, _ func(), err error) {
	var c closer.Stack
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	var m *telemetry.Pack
	if tel != nil {
		if m, err = telemetry.NewPack(tel); err != nil {
			return nil, nil, err
		}
	}
	db, blobs, err := clients.ObservedStorage(ctx, cfg.DB, cfg.Storage, &c, tel)
	if err != nil {
		return nil, nil, err
	}
	wrapper, err := clients.ObservedKMS(ctx, cfg.KMS, &c, tel, m.KMS())
	if err != nil {
		return nil, nil, err
	}
	rej, err := BuildRejecter(ctx, cfg, &c)
	if err != nil {
		return nil, nil, err
	}
	keys := crypt.NewKeyring(wrapper, func(ctx context.Context, k *crypt.KEK) error {
		if err := db.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped); err != nil {
			return err
		}
		m.KEKRotated(ctx)
		return nil
	}, cfg.KEKRotate)
	p := New(ConfigFrom(cfg), db, blobs, keys, rej, WithTelemetry(tel, m))
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
