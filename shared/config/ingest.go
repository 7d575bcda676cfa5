package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Ingest is the configuration of the Ingest function: the public front door
// that SDKs send to. It reads keys from the database and publishes segment
// messages; it holds no storage or KMS credentials.
type Ingest struct {
	DB

	// GoogleCloudProject is the project of the segment topic.
	GoogleCloudProject string `env:"GOOGLE_CLOUD_PROJECT, required"`
	// SegmentTopic is the topic ID Pack's subscription reads.
	SegmentTopic string `env:"SEGMENT_TOPIC, required"`
	// PubSubTimeout bounds waiting for Pub/Sub to accept one request's
	// messages; the SDK is answered only after it has.
	PubSubTimeout time.Duration `env:"PUBSUB_TIMEOUT, default=10s"`
	// PackURL is Pack's URL: each segment is sent there directly first
	// and published to SEGMENT_TOPIC only when Pack does not store it in
	// PackTimeout (functions/ingest/deliver.go). Empty publishes every
	// segment. https (Cloud Run, with an ID token), or http to a loopback
	// host (the dev stack).
	PackURL string `env:"PACK_URL"`
	// PackTimeout bounds one direct delivery: Pack answers after its batch
	// is committed, so it must exceed Pack's FLUSH_AGE plus a flush.
	PackTimeout time.Duration `env:"PACK_TIMEOUT, default=6s"`
	// PackHoldBytes bounds the payload bytes an instance's requests hold
	// while waiting for Pack; past it a segment is published at once.
	PackHoldBytes int64 `env:"PACK_HOLD_BYTES, default=268435456"`

	// MaxBodyBytes caps one request body as sent (413 past it). Pub/Sub
	// takes at most 10 MB per message.
	MaxBodyBytes int64 `env:"MAX_BODY_BYTES, default=10485760"`
	// MaxDecompressedBytes caps what one request decompresses to (bomb
	// guard), as Pack's limit of the same name.
	MaxDecompressedBytes int64 `env:"MAX_DECOMPRESSED_BYTES, default=67108864"`

	// KeyCacheTTL is how long an instance trusts a key lookup: a revoked
	// key is refused within this long.
	KeyCacheTTL time.Duration `env:"KEY_CACHE_TTL, default=30s"`
	// KeyRate and KeyBurst are the token bucket of one key on one instance
	// (requests per second, and the burst).
	KeyRate  float64 `env:"KEY_RATE, default=20"`
	KeyBurst int     `env:"KEY_BURST, default=100"`
	// ProjectRate and ProjectBurst are the token bucket of one project,
	// over all its keys, on one instance.
	ProjectRate  float64 `env:"PROJECT_RATE, default=100"`
	ProjectBurst int     `env:"PROJECT_BURST, default=500"`

	// RetentionDays is the retention class of ingested replays.
	RetentionDays int `env:"RETENTION_DAYS, default=90"`
	// PostHogStaticDir holds posthog-js's dist files (lazy-recorder.js and
	// friends) served under /static/; empty answers 404 there and the SDK
	// must load them from elsewhere.
	PostHogStaticDir string `env:"POSTHOG_STATIC_DIR"`
}

// LoadIngest reads and validates the Ingest configuration from the
// environment.
func LoadIngest(ctx context.Context) (*Ingest, error) {
	var c Ingest
	if err := load(ctx, &c); err != nil {
		return nil, err
	}
	if err := errors.Join(c.DB.validate(), c.validate()); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	return &c, nil
}

func (c *Ingest) validate() error {
	var errs []error
	if c.PubSubTimeout <= 0 {
		errs = append(errs, fmt.Errorf("PUBSUB_TIMEOUT must be positive, got %s", c.PubSubTimeout))
	}
	if err := checkPackURL(c.PackURL); err != nil {
		errs = append(errs, err)
	}
	if c.PackTimeout <= 0 {
		errs = append(errs, fmt.Errorf("PACK_TIMEOUT must be positive, got %s", c.PackTimeout))
	}
	if c.PackHoldBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("PACK_HOLD_BYTES (%d) must be at least MAX_BODY_BYTES (%d)", c.PackHoldBytes, c.MaxBodyBytes))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 10<<20 {
		errs = append(errs, fmt.Errorf("MAX_BODY_BYTES must be between 1024 and 10485760 (Pub/Sub's message limit), got %d", c.MaxBodyBytes))
	}
	if c.MaxDecompressedBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("MAX_DECOMPRESSED_BYTES (%d) must be at least MAX_BODY_BYTES (%d)", c.MaxDecompressedBytes, c.MaxBodyBytes))
	}
	if c.KeyCacheTTL <= 0 || c.KeyCacheTTL > 10*time.Minute {
		errs = append(errs, fmt.Errorf("KEY_CACHE_TTL must be in (0, 10m], got %s", c.KeyCacheTTL))
	}
	if c.KeyRate <= 0 || c.ProjectRate <= 0 {
		errs = append(errs, fmt.Errorf("KEY_RATE and PROJECT_RATE must be positive, got %g and %g", c.KeyRate, c.ProjectRate))
	}
	if c.KeyBurst < 1 || c.ProjectBurst < 1 {
		errs = append(errs, fmt.Errorf("KEY_BURST and PROJECT_BURST must be at least 1, got %d and %d", c.KeyBurst, c.ProjectBurst))
	}
	switch c.RetentionDays {
	case 30, 90, 365, 1825:
	default:
		errs = append(errs, fmt.Errorf("RETENTION_DAYS must be 30, 90, 365 or 1825, got %d", c.RetentionDays))
	}
	return errors.Join(errs...)
}

// checkPackURL accepts an empty URL, an https URL, or an http URL to a
// loopback host: segments (and, over https, ID tokens) never cross a network
// in the clear.
func checkPackURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("PACK_URL is not a URL")
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		// Redacted: a password in the URL stays out of the log.
		return fmt.Errorf("PACK_URL must be a bare scheme://host[:port] URL, got %q", u.Redacted())
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("PACK_URL must be https, or http to a loopback host, got %q", u.Redacted())
}
