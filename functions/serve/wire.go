package serve

import (
	"context"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/store"
)

// Build connects every dependency named by cfg and returns a ready Server
// plus a function that releases the clients. Locally STORAGE_EMULATOR_HOST
// (read by the storage library) and KMS_ENDPOINT point the clients at the
// stand-ins.
func Build(ctx context.Context, cfg *config.Serve) (_ *Server, _ func(), err error) {
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
	wrapper := crypt.NewKMS(kmsClient, cfg.KMSKey, cfg.KMSTimeout)
	keks := crypt.NewKEKCache(wrapper, db.WrappedKEK, cfg.KEKCacheSize, cfg.KEKCacheTTL)
	s := New(ConfigFrom(cfg), db, blob.NewGCS(gcs, cfg.Bucket, cfg.GCSTimeout), keks, auth.NewVerifier(cfg.JWTSecret))
	return s, c.Close, nil
}
