package shred

import (
	"context"
	"time"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// KEK cache of compaction's re-encoding: one sweep run opens the segments
// of many replays, sealed under the few KEKs of the hours they came in.
const (
	compactKEKCacheSize = 256
	compactKEKCacheTTL  = 10 * time.Minute
)

// Build connects every dependency named by cfg and returns a ready Service
// plus a function that releases the clients. tel (nil: none) receives the
// metrics and traces of the service and its clients. A KMS client is made
// only when compaction re-encodes segments (COMPACT_ZSTD_LEVEL not off):
// otherwise Shred never decrypts anything.
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
		if kms, on := cfg.CompactKMS(); on {
			var m *telemetry.KMS
			if tel != nil {
				if m, err = telemetry.NewKMS(tel); err != nil {
					return nil, err
				}
			}
			wrapper, err := clients.ObservedKMS(ctx, kms, c, tel, m)
			if err != nil {
				return nil, err
			}
			opts = append(opts, WithKEKs(crypt.NewKEKCache(wrapper, db.WrappedKEK, compactKEKCacheSize, compactKEKCacheTTL)))
		}
		return New(ConfigFrom(cfg), db, blobs, auth.NewVerifier(cfg.JWTSecret, cfg.TokenPolicy()), opts...), nil
	})
}
