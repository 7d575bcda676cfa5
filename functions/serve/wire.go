package serve

import (
	"context"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/store"
)

// Build connects every dependency named by cfg and returns a ready Server
// plus a function that releases the clients. Locally STORAGE_EMULATOR_HOST
// (read by the storage library) and KMS_ENDPOINT point the clients at the
// stand-ins.
func Build(ctx context.Context, cfg *config.Serve) (*Server, func(), error) {
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
	wrapper := crypt.NewKMS(kmsClient, cfg.KMSKey, cfg.KMSTimeout)
	keks := crypt.NewKEKCache(wrapper, db.WrappedKEK, cfg.KEKCacheSize, cfg.KEKCacheTTL)
	s := New(ConfigFrom(cfg), db, blob.NewGCS(gcs, cfg.Bucket, cfg.GCSTimeout), keks, auth.NewVerifier(cfg.JWTSecret))
	closeAll := func() {
		kmsClient.Close()
		gcs.Close()
		db.Close()
	}
	return s, closeAll, nil
}
