package shred

import (
	"context"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// Build connects every dependency named by cfg and returns a ready Service
// plus a function that releases the clients. tel (nil: none) receives the
// metrics and traces of the service and its clients.
func Build(ctx context.Context, cfg *config.Shred, tel *telemetry.Telemetry) (*Service, func(), error) {
	return closer.Build(func(c *closer.Stack) (*Service, error) {
		var opts []Option
		if tel != nil {
			o, err := Telemetry(tel)
			if err != nil {
				return nil, err
			}
			opts = append(opts, o)
		}
		db, blobs, err := clients.ObservedStorage(ctx, cfg.DB, cfg.Storage, c, tel)
		if err != nil {
			return nil, err
		}
		return New(ConfigFrom(cfg), db, blobs, auth.NewVerifier(cfg.JWTSecret, cfg.TokenPolicy()), opts...), nil
	})
}
