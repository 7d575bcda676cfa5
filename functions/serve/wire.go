package serve

import (
	"context"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
)

// Build connects every dependency named by cfg and returns a ready Server
// plus a function that releases the clients. Locally STORAGE_EMULATOR_HOST
// (read by the storage library) and KMS_ENDPOINT point the clients at the
// stand-ins.
func Build(ctx context.Context, cfg *config.Serve) (*Server, func(), error) {
	return closer.Build(func(c *closer.Stack) (*Server, error) {
		db, blobs, err := clients.Storage(ctx, cfg.DB, cfg.Storage, c)
		if err != nil {
			return nil, err
		}
		wrapper, err := clients.KMS(ctx, cfg.KMS, c)
		if err != nil {
			return nil, err
		}
		keks := crypt.NewKEKCache(wrapper, db.WrappedKEK, cfg.KEKCacheSize, cfg.KEKCacheTTL)
		return New(ConfigFrom(cfg), db, blobs, keks, auth.NewVerifier(cfg.JWTSecret)), nil
	})
}
