package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"github.com/replayvault/replayvault/shared/store"
)

// devIngestKey returns the dev project's ingest key for the dev web
// server's origins: the one a reused data dir already has, else a new one.
func (s *stack) devIngestKey(ctx context.Context) (string, error) {
	keys, err := s.db.IngestKeys(ctx, devProject)
	if err != nil {
		return "", err
	}
	origins := s.origins()
	for _, k := range keys {
		if k.RevokedAt == nil && slices.Equal(k.Origins, origins) {
			return k.PublicKey, nil
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	k := store.IngestKey{PublicKey: hex.EncodeToString(b[:]), ProjectID: devProject, Origins: origins, Label: "replayvault-dev"}
	if err := s.db.CreateIngestKey(ctx, k); err != nil {
		return "", err
	}
	return k.PublicKey, nil
}

// posthogDist is posthog-js's dist directory in node_modules, which Ingest
// serves lazy-recorder.js from; "" when posthog-js is not installed.
func (s *stack) posthogDist() string {
	if s.opts.NodeModules == "" {
		return ""
	}
	dir := filepath.Join(s.opts.NodeModules, "posthog-js", "dist")
	if _, err := os.Stat(filepath.Join(dir, "lazy-recorder.js")); err != nil {
		return ""
	}
	return dir
}

// sentryDSN is the DSN that points @sentry/browser at Ingest.
func sentryDSN(ingestURL, key string, project int64) string {
	u, err := url.Parse(ingestURL)
	if err != nil {
		return ""
	}
	u.User = url.User(key)
	u.Path = fmt.Sprintf("/%d", project)
	return u.String()
}
