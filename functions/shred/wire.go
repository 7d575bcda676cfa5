package shred

import (
	"context"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/store"
)

// Build connects every dependency named by cfg and returns a ready Service
// plus a function that releases the clients.
func Build(ctx context.Context, cfg *config.Shred) (*Service, func(), error) {
	db, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return nil, nil, err
	}
	gcs, err := blob.NewGCSClient(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	s := New(ConfigFrom(cfg), db, blob.NewGCS(gcs, cfg.Bucket, cfg.GCSTimeout), auth.NewVerifier(cfg.JWTSecret))
	closeAll := func() {
		gcs.Close()
		db.Close()
	}
	return s, closeAll, nil
}
