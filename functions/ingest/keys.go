package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/replayvault/replayvault/shared/store"
)

// keyCacheSize bounds the keys one instance remembers, found or not: a
// flood of made-up keys costs one lookup each per TTL and evicts old
// entries, never memory without bound.
const keyCacheSize = 10_000

// maxKeyLen is the longest public key accepted; longer is never a key.
const maxKeyLen = 128

// keyCache looks ingest keys up in the database and remembers each answer,
// a key or its absence, for ttl. A revocation therefore takes effect within
// ttl on every instance.
type keyCache struct {
	db    *store.DB
	cache *expirable.LRU[string, *store.IngestKey] // nil value: no such key
}

func newKeyCache(db *store.DB, ttl time.Duration) *keyCache {
	return &keyCache{db: db, cache: expirable.NewLRU[string, *store.IngestKey](keyCacheSize, nil, ttl)}
}

// lookup returns the live key, or an *Error saying why there is none.
func (c *keyCache) lookup(ctx context.Context, public string) (*store.IngestKey, error) {
	if public == "" {
		return nil, errorf(http.StatusUnauthorized, "missing_key", "no ingest key in the request")
	}
	if len(public) > maxKeyLen {
		return nil, errorf(http.StatusUnauthorized, "unknown_key", "unknown ingest key")
	}
	k, ok := c.cache.Get(public)
	if !ok {
		var err error
		k, err = c.db.LookupIngestKey(ctx, public)
		if errors.Is(err, store.ErrNotFound) {
			k, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("ingest key: %w", err)
		}
		c.cache.Add(public, k)
	}
	switch {
	case k == nil:
		return nil, errorf(http.StatusUnauthorized, "unknown_key", "unknown ingest key")
	case k.RevokedAt != nil:
		return nil, errorf(http.StatusUnauthorized, "revoked_key", "ingest key was revoked")
	}
	return k, nil
}

// checkKey applies a key to a request: the project the path names (0 when
// the path names none) must be the key's, and a browser's Origin one of the
// key's origins. Requests without an Origin come from outside a browser and
// are not limited by origin (any client can set any header; the origin list
// keeps other sites' pages from using the key, which is what it can do).
func checkKey(k *store.IngestKey, project int64, r *http.Request) error {
	if project != 0 && project != k.ProjectID {
		return errorf(http.StatusForbidden, "wrong_project", "ingest key belongs to another project")
	}
	if origin := r.Header.Get("Origin"); origin != "" && !originAllowed(k.Origins, origin) {
		return errorf(http.StatusForbidden, "origin_not_allowed", "origin is not allowed for this ingest key")
	}
	return nil
}

func originAllowed(origins []string, origin string) bool {
	return slices.Contains(origins, "*") || slices.ContainsFunc(origins, func(o string) bool {
		return strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	})
}

// allowOrigin sets the CORS headers of an actual (not preflight) response
// to a browser on an allowed origin.
func allowOrigin(w http.ResponseWriter, r *http.Request, k *store.IngestKey) {
	origin := r.Header.Get("Origin")
	if origin == "" || (k != nil && !originAllowed(k.Origins, origin)) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "Retry-After, X-Sentry-Rate-Limits")
	h.Add("Vary", "Origin")
}
