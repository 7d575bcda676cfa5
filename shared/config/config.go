// Package config loads and validates the environment configuration of each
// replayvault function. There is one struct per function; each embeds the
// pieces it shares with the others. Secrets are read from the environment
// (Cloud Run maps them from Secret Manager) and are never logged.
package config

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/replayvault/replayvault/shared/auth"
)

// DB says how to reach the database. In production the functions dial
// AlloyDB with IAM authentication (ALLOYDB_INSTANCE, DB_USER, DB_NAME);
// locally and in tests DATABASE_URL points at a plain PostgreSQL.
type DB struct {
	// DatabaseURL is a libpq-style URL for a plain PostgreSQL. When set it
	// wins over the AlloyDB settings.
	DatabaseURL string `env:"DATABASE_URL"`
	// AlloyDBInstance is the instance URI:
	// projects/P/locations/R/clusters/C/instances/I.
	AlloyDBInstance string `env:"ALLOYDB_INSTANCE"`
	// DBUser is the IAM database user: the service account's email without
	// ".gserviceaccount.com".
	DBUser string `env:"DB_USER"`
	// DBName is the database name.
	DBName string `env:"DB_NAME, default=replayvault"`
	// DBMaxConns caps the pool of one instance.
	DBMaxConns int32 `env:"DB_MAX_CONNS, default=8"`
	// DBTimeout bounds every database statement or transaction.
	DBTimeout time.Duration `env:"DB_TIMEOUT, default=15s"`
}

func (c *DB) validate() error {
	if c.DatabaseURL == "" && (c.AlloyDBInstance == "" || c.DBUser == "") {
		return errors.New("set DATABASE_URL, or ALLOYDB_INSTANCE and DB_USER")
	}
	if c.DBMaxConns < 1 {
		return fmt.Errorf("DB_MAX_CONNS must be at least 1, got %d", c.DBMaxConns)
	}
	if c.DBTimeout <= 0 {
		return fmt.Errorf("DB_TIMEOUT must be positive, got %s", c.DBTimeout)
	}
	return nil
}

// Storage says where packed blobs live. STORAGE_EMULATOR_HOST, read by the
// storage client itself, points it at fake-gcs-server locally.
type Storage struct {
	// Bucket is the GCS bucket of packed blobs.
	Bucket string `env:"BUCKET, required"`
	// GCSTimeout bounds every single GCS request.
	GCSTimeout time.Duration `env:"GCS_TIMEOUT, default=30s"`
}

func (c *Storage) validate() error {
	if c.GCSTimeout <= 0 {
		return fmt.Errorf("GCS_TIMEOUT must be positive, got %s", c.GCSTimeout)
	}
	return nil
}

// KMS says which Cloud KMS key is the root of trust.
type KMS struct {
	// KMSKey is the key's resource name:
	// projects/P/locations/L/keyRings/R/cryptoKeys/K.
	KMSKey string `env:"KMS_KEY, required"`
	// KMSEndpoint points the KMS client at a local gRPC server (plaintext, no
	// auth). Local development and tests only.
	KMSEndpoint string `env:"KMS_ENDPOINT"`
	// KMSTimeout bounds every KMS call.
	KMSTimeout time.Duration `env:"KMS_TIMEOUT, default=10s"`
}

func (c *KMS) validate() error {
	if !strings.HasPrefix(c.KMSKey, "projects/") || !strings.Contains(c.KMSKey, "/cryptoKeys/") {
		return fmt.Errorf("KMS_KEY must be projects/P/locations/L/keyRings/R/cryptoKeys/K, got %q", c.KMSKey)
	}
	if c.KMSTimeout <= 0 {
		return fmt.Errorf("KMS_TIMEOUT must be positive, got %s", c.KMSTimeout)
	}
	return nil
}

// Auth holds the JWT verification secret of the HTTP functions.
type Auth struct {
	// JWTSecret is the HS256 key (at least 32 bytes), from Secret Manager.
	JWTSecret string `env:"JWT_SECRET, required"`
	// JWTAudience is the aud a token must carry.
	JWTAudience string `env:"JWT_AUDIENCE, default=replayvault"`
	// JWTIssuer is the iss a token must carry.
	JWTIssuer string `env:"JWT_ISSUER, default=replayvault"`
	// JWTMaxLifetime caps a token's exp - iat.
	JWTMaxLifetime time.Duration `env:"JWT_MAX_LIFETIME, default=24h"`
	// CORSOrigins are the origins allowed to call the API from a browser,
	// comma separated; "*" is refused because responses carry credentials.
	CORSOrigins []string `env:"CORS_ORIGINS"`
}

func (c *Auth) validate() error {
	if len(c.JWTSecret) < 32 {
		return fmt.Errorf("JWT_SECRET must be at least 32 bytes, got %d", len(c.JWTSecret))
	}
	if c.JWTAudience == "" || c.JWTIssuer == "" {
		return errors.New("JWT_AUDIENCE and JWT_ISSUER must not be empty")
	}
	if c.JWTMaxLifetime < time.Minute {
		return fmt.Errorf("JWT_MAX_LIFETIME must be at least 1m, got %s", c.JWTMaxLifetime)
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			return errors.New(`CORS_ORIGINS must list origins; "*" is not allowed`)
		}
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return fmt.Errorf("CORS_ORIGINS entry %q must start with http:// or https://", o)
		}
	}
	return nil
}

// Segments holds the limits on a segment that the function storing it and
// the function reading it back must agree on. One struct, embedded in both,
// so raising a limit for Pack cannot leave Serve answering 500 for segments
// Pack accepted.
type Segments struct {
	// MaxDecompressedBytes caps a segment's decompressed size: Pack rejects
	// a larger segment (bomb guard) and Serve refuses to inflate one past it.
	MaxDecompressedBytes int64 `env:"MAX_DECOMPRESSED_BYTES, default=67108864"`
}

func (c *Segments) validate() error {
	if c.MaxDecompressedBytes < 1024 {
		return fmt.Errorf("MAX_DECOMPRESSED_BYTES must be at least 1024, got %d", c.MaxDecompressedBytes)
	}
	return nil
}

// Pack is the configuration of the Pack function.
type Pack struct {
	DB
	Storage
	KMS
	Segments

	// GoogleCloudProject is the project of the reject topic.
	GoogleCloudProject string `env:"GOOGLE_CLOUD_PROJECT, required"`
	// RejectTopic is the topic ID that permanently invalid segments go to.
	RejectTopic string `env:"REJECT_TOPIC, required"`
	// PubSubTimeout bounds one reject publish.
	PubSubTimeout time.Duration `env:"PUBSUB_TIMEOUT, default=10s"`

	// FlushBytes flushes a batch once its sealed bytes reach this size.
	FlushBytes int `env:"FLUSH_BYTES, default=8388608"`
	// FlushSegments flushes a batch once it holds this many segments.
	FlushSegments int `env:"FLUSH_SEGMENTS, default=1000"`
	// FlushAge flushes a batch this long after its first segment arrived.
	FlushAge time.Duration `env:"FLUSH_AGE, default=2s"`
	// MaxConcurrency is the instance's request concurrency (the number Cloud
	// Run is given): when this many requests wait, the batch flushes at once.
	MaxConcurrency int `env:"MAX_CONCURRENCY, default=1000"`
	// MaxBufferBytes bounds the bytes requests hold in memory (envelope and
	// payload while validating, then the sealed segment); a request that
	// does not fit is refused at once with 429 so Pub/Sub redelivers.
	MaxBufferBytes int64 `env:"MAX_BUFFER_BYTES, default=268435456"`
	// KEKRotate is how long one KEK seals new segments.
	KEKRotate time.Duration `env:"KEK_ROTATE, default=1h"`

	// TranscodeMinRetentionDays: segments kept this many days or longer are
	// stored as zstd at StoreZstdLevel, gzip and zlib payloads included;
	// shorter-lived ones as sent (plain JSON as zstd at the default level).
	// 0 transcodes every segment. The default is where the extra CPU pays
	// for itself in stored bytes (README, cost section).
	TranscodeMinRetentionDays int `env:"TRANSCODE_MIN_RETENTION_DAYS, default=365"`
	// StoreZstdLevel is the level segments are transcoded at: fastest,
	// default, better or best.
	StoreZstdLevel string `env:"STORE_ZSTD_LEVEL, default=better"`
	// RewrittenEncoding is how Pack stores the events an edge rule
	// rewrote (a PII scrub's masks), which it must encode itself: "plain"
	// leaves them for compaction to compress with the rest of the idle
	// replay (Shred's COMPACT_ZSTD_LEVEL, on by default), "s2" compresses
	// them as an s2 block at once (for deployments without compaction).
	// Segments over 1 MiB of events are s2 either way (README, Edge rules).
	RewrittenEncoding string `env:"REWRITTEN_ENCODING, default=plain"`

	// Rules configures the per-project edge rules (WASM modules).
	Rules

	// DeriveSlices makes Pack store console, network and timeline slices
	// derived from each recording segment beside it. Turn it off for
	// projects whose SDK sends its own slices under the same segment ids.
	DeriveSlices bool `env:"DERIVE_SLICES, default=true"`
}

// Rules configures Pack's edge rules.
type Rules struct {
	// RulesRefresh is how often Pack reloads rule assignments and fetches
	// new modules; a change takes effect within this interval.
	RulesRefresh time.Duration `env:"RULES_REFRESH, default=30s"`
	// RulesTimeout is one rule call's time budget.
	RulesTimeout time.Duration `env:"RULES_TIMEOUT, default=2s"`
	// RulesMemoryBytes caps one module instance's memory.
	RulesMemoryBytes int64 `env:"RULES_MEMORY_BYTES, default=268435456"`
	// RulesMaxInputBytes is the largest decompressed segment given to rules;
	// a larger one counts as a failure of each rule (its fail mode decides).
	RulesMaxInputBytes int64 `env:"RULES_MAX_INPUT_BYTES, default=16777216"`
}

func (c *Rules) validate() error {
	var errs []error
	if c.RulesRefresh < time.Second {
		errs = append(errs, fmt.Errorf("RULES_REFRESH must be at least 1s, got %s", c.RulesRefresh))
	}
	if c.RulesTimeout <= 0 {
		errs = append(errs, fmt.Errorf("RULES_TIMEOUT must be positive, got %s", c.RulesTimeout))
	}
	if c.RulesMemoryBytes < 16<<20 || c.RulesMemoryBytes > 4<<30 {
		errs = append(errs, fmt.Errorf("RULES_MEMORY_BYTES must be between 16 MiB and 4 GiB, got %d", c.RulesMemoryBytes))
	}
	if c.RulesMaxInputBytes < 1024 || c.RulesMaxInputBytes >= c.RulesMemoryBytes {
		errs = append(errs, fmt.Errorf("RULES_MAX_INPUT_BYTES must be at least 1024 and below RULES_MEMORY_BYTES, got %d", c.RulesMaxInputBytes))
	}
	return errors.Join(errs...)
}

// Serve is the configuration of the Serve function.
type Serve struct {
	DB
	Storage
	KMS
	Auth
	Segments

	// CoalesceGapBytes merges two ranged reads of one blob when the bytes
	// between them are fewer than this.
	CoalesceGapBytes int64 `env:"COALESCE_GAP_BYTES, default=1048576"`
	// MaxReadBytes caps one coalesced ranged read.
	MaxReadBytes int64 `env:"MAX_READ_BYTES, default=16777216"`
	// ReadParallelism bounds the ranged reads in flight for one request.
	ReadParallelism int `env:"READ_PARALLELISM, default=32"`
	// MaxInflightBytes bounds the bytes all requests of one instance hold
	// in pages of rows, ranged reads and decoded segments; read-ahead, and
	// then new requests, wait past it.
	MaxInflightBytes int64 `env:"MAX_INFLIGHT_BYTES, default=536870912"`
	// KEKCacheSize is how many unwrapped KEKs one instance keeps.
	KEKCacheSize int `env:"KEK_CACHE_SIZE, default=1024"`
	// KEKCacheTTL is how long an unwrapped KEK stays cached.
	KEKCacheTTL time.Duration `env:"KEK_CACHE_TTL, default=10m"`
}

// Shred is the configuration of the Shred function.
type Shred struct {
	DB
	Storage
	Auth
	Segments

	// OrphanGrace is how old an object without a blob row must be before the
	// sweep deletes it; it must exceed the longest flush.
	OrphanGrace time.Duration `env:"ORPHAN_GRACE, default=1h"`
	// SweepBatch is how many expired segment rows one statement deletes.
	SweepBatch int `env:"SWEEP_BATCH, default=5000"`
	// SweepToken, when set, is a bearer token that POST /v1/sweep accepts in
	// addition to Cloud Run IAM (for local runs; production relies on IAM).
	SweepToken string `env:"SWEEP_TOKEN"`
	// CompactIdle is how long a replay must go without a new segment before
	// the sweep re-packs its segments into one object; 0 turns it off.
	CompactIdle time.Duration `env:"COMPACT_IDLE, default=1h"`
	// CompactMaxBytes caps the stored bytes of a replay the sweep re-packs.
	CompactMaxBytes int64 `env:"COMPACT_MAX_BYTES, default=67108864"`
	// CompactZstdLevel is "off" (compaction copies sealed bytes, never
	// decrypting) or a zstd level (fastest, default, better, best) at which
	// compaction re-encodes every segment not yet zstd, so reads of idle
	// replays decode zstd instead of gzip. On, Shred decrypts: it needs
	// KMS_KEY and the KMS decrypt permission on it.
	CompactZstdLevel string `env:"COMPACT_ZSTD_LEVEL, default=default"`
	// KMSKey, KMSEndpoint and KMSTimeout are config.KMS's, read only when
	// CompactZstdLevel is not off.
	KMSKey      string        `env:"KMS_KEY"`
	KMSEndpoint string        `env:"KMS_ENDPOINT"`
	KMSTimeout  time.Duration `env:"KMS_TIMEOUT, default=10s"`
}

// CompactKMS returns the KMS settings compaction opens segments with, and
// whether it does (CompactZstdLevel is not off).
func (c *Shred) CompactKMS() (KMS, bool) {
	return KMS{KMSKey: c.KMSKey, KMSEndpoint: c.KMSEndpoint, KMSTimeout: c.KMSTimeout}, c.CompactZstdLevel != "off"
}

// TokenPolicy is what a token must say to be accepted.
func (c *Auth) TokenPolicy() auth.Policy {
	return auth.Policy{Audience: c.JWTAudience, Issuer: c.JWTIssuer, MaxLifetime: c.JWTMaxLifetime}
}

// LoadPack reads and validates the Pack configuration from the environment.
func LoadPack(ctx context.Context) (*Pack, error) {
	var c Pack
	if err := load(ctx, &c); err != nil {
		return nil, err
	}
	if err := errors.Join(c.DB.validate(), c.Storage.validate(), c.KMS.validate(), c.Segments.validate(), c.validate(), c.Rules.validate()); err != nil {
		return nil, fmt.Errorf("pack config: %w", err)
	}
	return &c, nil
}

func (c *Pack) validate() error {
	var errs []error
	if c.FlushBytes < 1024 {
		errs = append(errs, fmt.Errorf("FLUSH_BYTES must be at least 1024, got %d", c.FlushBytes))
	}
	if c.FlushSegments < 1 {
		errs = append(errs, fmt.Errorf("FLUSH_SEGMENTS must be at least 1, got %d", c.FlushSegments))
	}
	if c.FlushAge <= 0 {
		errs = append(errs, fmt.Errorf("FLUSH_AGE must be positive, got %s", c.FlushAge))
	}
	if c.MaxConcurrency < 1 {
		errs = append(errs, fmt.Errorf("MAX_CONCURRENCY must be at least 1, got %d", c.MaxConcurrency))
	}
	if c.MaxBufferBytes < int64(c.FlushBytes) {
		errs = append(errs, fmt.Errorf("MAX_BUFFER_BYTES (%d) must be at least FLUSH_BYTES (%d)", c.MaxBufferBytes, c.FlushBytes))
	}
	if c.KEKRotate < time.Minute {
		errs = append(errs, fmt.Errorf("KEK_ROTATE must be at least 1m, got %s", c.KEKRotate))
	}
	if c.TranscodeMinRetentionDays < 0 {
		errs = append(errs, fmt.Errorf("TRANSCODE_MIN_RETENTION_DAYS must not be negative, got %d", c.TranscodeMinRetentionDays))
	}
	if !slices.Contains([]string{"fastest", "default", "better", "best"}, c.StoreZstdLevel) {
		errs = append(errs, fmt.Errorf("STORE_ZSTD_LEVEL must be fastest, default, better or best, got %q", c.StoreZstdLevel))
	}
	if c.RewrittenEncoding != "plain" && c.RewrittenEncoding != "s2" {
		errs = append(errs, fmt.Errorf("REWRITTEN_ENCODING must be plain or s2, got %q", c.RewrittenEncoding))
	}
	return errors.Join(errs...)
}

// LoadServe reads and validates the Serve configuration from the environment.
func LoadServe(ctx context.Context) (*Serve, error) {
	var c Serve
	if err := load(ctx, &c); err != nil {
		return nil, err
	}
	if err := errors.Join(c.DB.validate(), c.Storage.validate(), c.KMS.validate(), c.Auth.validate(), c.Segments.validate(), c.validate()); err != nil {
		return nil, fmt.Errorf("serve config: %w", err)
	}
	return &c, nil
}

func (c *Serve) validate() error {
	var errs []error
	if c.CoalesceGapBytes < 0 {
		errs = append(errs, fmt.Errorf("COALESCE_GAP_BYTES must not be negative, got %d", c.CoalesceGapBytes))
	}
	if c.MaxReadBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("MAX_READ_BYTES must be at least 1 MiB, got %d", c.MaxReadBytes))
	}
	if c.ReadParallelism < 1 {
		errs = append(errs, fmt.Errorf("READ_PARALLELISM must be at least 1, got %d", c.ReadParallelism))
	}
	// One request's lease: a page of rows (under 1 MiB), a window of two
	// reads, one read, and one decoded segment.
	if lease := 4*c.MaxReadBytes + c.MaxDecompressedBytes + c.MaxDecompressedBytes/8; c.MaxInflightBytes < lease {
		errs = append(errs, fmt.Errorf("MAX_INFLIGHT_BYTES (%d) must hold one request's lease: at least 4 × MAX_READ_BYTES + 9/8 × MAX_DECOMPRESSED_BYTES = %d", c.MaxInflightBytes, lease))
	}
	if c.KEKCacheSize < 1 {
		errs = append(errs, fmt.Errorf("KEK_CACHE_SIZE must be at least 1, got %d", c.KEKCacheSize))
	}
	if c.KEKCacheTTL <= 0 {
		errs = append(errs, fmt.Errorf("KEK_CACHE_TTL must be positive, got %s", c.KEKCacheTTL))
	}
	return errors.Join(errs...)
}

// LoadShred reads and validates the Shred configuration from the environment.
func LoadShred(ctx context.Context) (*Shred, error) {
	var c Shred
	if err := load(ctx, &c); err != nil {
		return nil, err
	}
	if err := errors.Join(c.DB.validate(), c.Storage.validate(), c.Auth.validate(), c.Segments.validate(), c.validate()); err != nil {
		return nil, fmt.Errorf("shred config: %w", err)
	}
	return &c, nil
}

func (c *Shred) validate() error {
	var errs []error
	if c.OrphanGrace < time.Minute {
		errs = append(errs, fmt.Errorf("ORPHAN_GRACE must be at least 1m, got %s", c.OrphanGrace))
	}
	if c.SweepBatch < 1 {
		errs = append(errs, fmt.Errorf("SWEEP_BATCH must be at least 1, got %d", c.SweepBatch))
	}
	if c.CompactIdle < 0 || c.CompactMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("COMPACT_IDLE and COMPACT_MAX_BYTES must not be negative"))
	}
	if !slices.Contains([]string{"off", "fastest", "default", "better", "best"}, c.CompactZstdLevel) {
		errs = append(errs, fmt.Errorf("COMPACT_ZSTD_LEVEL must be off, fastest, default, better or best, got %q", c.CompactZstdLevel))
	} else if kms, on := c.CompactKMS(); on {
		if err := kms.validate(); err != nil {
			errs = append(errs, fmt.Errorf("COMPACT_ZSTD_LEVEL=%s opens segments: %w", c.CompactZstdLevel, err))
		}
	}
	return errors.Join(errs...)
}

func load(ctx context.Context, v any) error {
	if err := envconfig.Process(ctx, v); err != nil {
		// envconfig names struct fields; name the variable the user sets.
		msg := err.Error()
		for field, env := range fieldEnv(reflect.TypeOf(v).Elem()) {
			msg = strings.ReplaceAll(msg, field+":", env+":")
		}
		return fmt.Errorf("read environment: %s", msg)
	}
	return nil
}

// fieldEnv maps struct field names to the variables they read.
func fieldEnv(t reflect.Type) map[string]string {
	m := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range fieldEnv(f.Type) {
				m[k] = v
			}
			continue
		}
		if tag := f.Tag.Get("env"); tag != "" {
			name, _, _ := strings.Cut(tag, ",")
			m[f.Name] = strings.TrimSpace(name)
		}
	}
	return m
}

// LocalOnly lists the variables that only local runs set; a deployment must
// not set them (Terraform never does).
var LocalOnly = []string{"DATABASE_URL", "KMS_ENDPOINT", "SWEEP_TOKEN"}

// EnvVars returns the names of the environment variables that the config
// struct v (for example Pack{}) reads, sorted.
func EnvVars(v any) []string {
	var names []string
	for _, env := range fieldEnv(reflect.TypeOf(v)) {
		names = append(names, env)
	}
	slices.Sort(names)
	return names
}
