package serve

import (
	"context"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// Build connects every dependency named by cfg and returns a ready Server
// plus a function that releases the clients. Locally STORAGE_EMULATOR_HOST
// (read by the storage library) and KMS_ENDPOINT point the clients at the
// stand-ins. tel (nil: none) receives the metrics and traces of the server
// and its clients.
func Build(ctx context.Context, cfg *config.Serve, tel *telemetry.Telemetry) (*Server, func(), error) {
	return closer.Build(func(c *closer.Stack) (*Server, error) {
		var opts []Option
		var m *telemetry.Serve
		if tel != nil {
			o, sm, err := Telemetry(tel)
			if err != nil {
				return nil, err
			}
			opts, m = append(opts, o), sm
		}
		db, blobs, err := clients.ObservedStorage(ctx, cfg.DB, cfg.Storage, c, tel)
		if err != nil {
			return nil, err
		}
		wrapper, err := clients.ObservedKMS(ctx, cfg.KMS, c, tel, m.KMS())
		if err != nil {
			return nil, err
		}
		keks := crypt.NewKEKCache(wrapper, db.WrappedKEK, cfg.KEKCacheSize, cfg.KEKCacheTTL)
		return New(ConfigFrom(cfg), db, blobs, keks, auth.NewVerifier(cfg.JWTSecret, cfg.TokenPolicy()), opts...), nil
	})
}
