package shred

import (
	"context"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
)

// Build connects every dependency named by cfg and returns a ready Service
// plus a function that releases the clients.
func Build(ctx context.Context, cfg *config.Shred) (*Service, func(), error) {
	return closer.Build(func(c *closer.Stack) (*Service, error) {
		db, blobs, err := clients.Storage(ctx, cfg.DB, cfg.Storage, c)
		if err != nil {
			return nil, err
		}
		return New(ConfigFrom(cfg), db, blobs, auth.NewVerifier(cfg.JWTSecret)), nil
	})
}
