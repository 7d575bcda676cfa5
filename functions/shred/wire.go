package shred

import (
	"context"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/store"
)

// Build connects every dependency named by cfg and returns a ready Service
// plus a function that releases the clients.
func Build(ctx context.Context, cfg *config.Shred) (_ *Service, _ func(), err error) {
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
	s := New(ConfigFrom(cfg), db, blob.NewGCS(gcs, cfg.Bucket, cfg.GCSTimeout), auth.NewVerifier(cfg.JWTSecret))
	return s, c.Close, nil
}
