// Package serve is the Serve function: the HTTP read path. It looks up a
// replay's segment rows, plans coalesced ranged reads of the packed blobs,
// runs them in parallel within a bounded window, decrypts and decompresses
// each segment, and streams the assembled recording in segment order as
// soon as the next segment is ready.
package serve

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// Config is what Serve needs from config.Serve.
type Config struct {
	// CoalesceGapBytes: two ranges of one blob are read together when fewer
	// bytes than this lie between them.
	CoalesceGapBytes int64
	// MaxReadBytes caps one coalesced read.
	MaxReadBytes int64
	// ReadParallelism bounds the reads in flight for one request.
	ReadParallelism int
	// WindowBytes bounds the bytes one request holds ahead of its writer:
	// reads in flight plus decrypted segments not yet written.
	WindowBytes int64
	// MaxReadsAhead bounds the reads started whose segments are not all
	// written yet.
	MaxReadsAhead int
	// RowPage is how many segment rows one request reads from the database
	// at a time (keyset pages), so a replay of any length costs bounded
	// memory.
	RowPage int
	// InstanceBytes bounds the bytes all requests of the instance hold in
	// pages of rows, reads and decoded segments (MAX_INFLIGHT_BYTES): see
	// budget. Read-ahead, then new requests, wait past it.
	InstanceBytes int64
	// MaxDecompressed caps one segment's decompressed size; it is Pack's
	// MAX_DECOMPRESSED_BYTES, so every segment Pack stored can be served.
	MaxDecompressed int64
	// CORSOrigins may call the API from a browser.
	CORSOrigins []string
}

// ConfigFrom derives Serve's settings from the function's config. The
// window is two maximal reads: enough to keep reads going while the writer
// drains one, small enough for many concurrent requests per instance.
func ConfigFrom(c *config.Serve) Config {
	return Config{
		CoalesceGapBytes: c.CoalesceGapBytes,
		MaxReadBytes:     c.MaxReadBytes,
		ReadParallelism:  c.ReadParallelism,
		WindowBytes:      2 * c.MaxReadBytes,
		MaxReadsAhead:    4 * c.ReadParallelism,
		RowPage:          DefaultRowPage,
		InstanceBytes:    c.MaxInflightBytes,
		MaxDecompressed:  c.MaxDecompressedBytes,
		CORSOrigins:      c.CORSOrigins,
	}
}

func (c Config) withDefaults() Config {
	if c.MaxReadBytes <= 0 {
		c.MaxReadBytes = 16 << 20
	}
	if c.ReadParallelism <= 0 {
		c.ReadParallelism = 8
	}
	if c.WindowBytes <= 0 {
		c.WindowBytes = 2 * c.MaxReadBytes
	}
	if c.MaxReadsAhead <= 0 {
		c.MaxReadsAhead = 4 * c.ReadParallelism
	}
	if c.MaxDecompressed <= 0 {
		c.MaxDecompressed = segment.DefaultMaxDecompressed
	}
	if c.RowPage <= 0 {
		c.RowPage = DefaultRowPage
	}
	if c.InstanceBytes <= 0 {
		c.InstanceBytes = DefaultInstanceBytes
	}
	return c
}

// Defaults of RowPage and InstanceBytes.
const (
	// DefaultRowPage rows take about 0.6 MiB (wrapped keys, paths, and
	// the fetcher's per-segment state): 80 concurrent requests hold
	// about 50 MiB of rows.
	DefaultRowPage = 1_000
	// DefaultInstanceBytes matches MAX_INFLIGHT_BYTES's default.
	DefaultInstanceBytes = 512 << 20
)

// rowBytes is what one segment row costs while its page is read: the
// store.Segment with its wrapped key and blob path, and the fetcher's and
// planner's state for it (measured: about 600 bytes).
const rowBytes = 640

// Server answers the Serve API. It is safe for concurrent use.
type Server struct {
	cfg      Config
	db       *store.DB
	blobs    blob.Store
	keks     *crypt.KEKCache
	verifier *auth.Verifier
	handler  http.Handler
	budget   *budget // bytes in flight over all requests

	metrics *telemetry.Serve // nil without telemetry
}

// Option adjusts a Server.
type Option func(*Server)

// WithTelemetry traces every request (a server span from the caller's
// traceparent), counts them in h by route and status, and records each
// recording's reads in m.
func WithTelemetry(t *telemetry.Telemetry, h *telemetry.HTTP, m *telemetry.Serve) Option {
	return func(s *Server) {
		s.metrics = m
		s.handler = t.Handler("serve", h, route, s.handler)
	}
}

// Telemetry creates Serve's instruments on t and returns the option that
// uses them.
func Telemetry(t *telemetry.Telemetry) (Option, *telemetry.Serve, error) {
	h, err := telemetry.NewHTTP(t, "serve")
	if err != nil {
		return nil, nil, err
	}
	m, err := telemetry.NewServe(t)
	if err != nil {
		return nil, nil, err
	}
	return WithTelemetry(t, h, m), m, nil
}

// route names a request's route for metrics, without its ids.
func route(r *http.Request) string {
	switch {
	case r.Method == http.MethodOptions:
		return "preflight"
	case strings.HasSuffix(r.URL.Path, "/recording"):
		return "recording"
	case strings.HasPrefix(r.URL.Path, "/v1/projects/"):
		return "replay"
	default:
		return "other"
	}
}

// New returns a Server over its dependencies. Zero fields of cfg take
// defaults.
func New(cfg Config, db *store.DB, blobs blob.Store, keks *crypt.KEKCache, verifier *auth.Verifier, opts ...Option) *Server {
	s := &Server{cfg: cfg.withDefaults(), db: db, blobs: blobs, keks: keks, verifier: verifier}
	s.budget = newBudget(s.cfg.InstanceBytes)
	// With FUNCTION_TARGET=Serve the function receives every path, so it
	// routes (and answers unknown paths) itself.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/projects/{project}/replays/{replay}/recording", s.recording)
	mux.HandleFunc("GET /v1/projects/{project}/replays/{replay}", s.metadata)
	mux.HandleFunc("GET /v1/projects/{project}/replays", s.list)
	mux.HandleFunc("/v1/projects/{project}/replays", methodNotAllowed)
	mux.HandleFunc("/v1/projects/{project}/replays/{replay}/recording", methodNotAllowed)
	mux.HandleFunc("/v1/projects/{project}/replays/{replay}", methodNotAllowed)
	s.registerIssues(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, r, fmt.Errorf("%w: no route for %s", derrors.NotFound, r.URL.Path), nil)
	})
	s.handler = api.CORS(s.cfg.CORSOrigins, "GET, POST, OPTIONS", mux)
	for _, o := range opts {
		o(s)
	}
	return s
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Replays are user content; never let a browser guess another type.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.handler.ServeHTTP(w, r)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD, OPTIONS")
	api.WriteError(w, r, fmt.Errorf("%w: %s", derrors.MethodNotAllowed, r.Method), nil)
}

// metadata answers GET /v1/projects/{project}/replays/{replay}.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	project, replay, err := s.authorize(r)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	meta, err := s.db.ReplayMeta(r.Context(), project, replay)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	if at, gone := meta.Shredded(); gone {
		writeGone(w, r, at)
		return
	}
	api.WriteJSON(w, http.StatusOK, metadataJSON(meta))
}

// Metadata is the body of GET /v1/projects/{project}/replays/{replay}.
type Metadata struct {
	ProjectID     int64      `json:"project_id"`
	ReplayID      uuid.UUID  `json:"replay_id"`
	SegmentCount  int        `json:"segment_count"`
	StoredBytes   int64      `json:"stored_bytes"`
	RawBytes      int64      `json:"raw_bytes"`
	FirstSeen     time.Time  `json:"first_seen"`
	LastSeen      time.Time  `json:"last_seen"`
	StartedAtMS   *int64     `json:"started_at_ms"`
	EndedAtMS     *int64     `json:"ended_at_ms"`
	RetentionDays int        `json:"retention_days"`
	DeletedAt     *time.Time `json:"deleted_at"`
	// Source and the fields after it are what the SDK said (through
	// Ingest); source_id is the replay's id in the SDK's own spelling.
	replaymeta.Meta
}

func metadataJSON(m *store.Replay) Metadata {
	return Metadata{
		ProjectID:     m.ProjectID,
		ReplayID:      m.ReplayID,
		SegmentCount:  m.SegmentCount,
		StoredBytes:   m.StoredBytes,
		RawBytes:      m.RawBytes,
		FirstSeen:     m.FirstSeen.UTC(),
		LastSeen:      m.LastSeen.UTC(),
		StartedAtMS:   m.StartedAtMS,
		EndedAtMS:     m.EndedAtMS,
		RetentionDays: m.RetentionDays,
		DeletedAt:     m.DeletedAt,
		Meta:          m.Meta,
	}
}

// writeGone answers 410 with the time of the shred.
func writeGone(w http.ResponseWriter, r *http.Request, at time.Time) {
	api.WriteError(w, r, fmt.Errorf("%w: replay was shredded", derrors.Gone),
		map[string]any{"deleted_at": at.UTC()})
}

// authorize checks the token (api.Authorize), then parses the replay id.
func (s *Server) authorize(r *http.Request) (int64, uuid.UUID, error) {
	project, _, err := api.Authorize(r, s.verifier, r.PathValue("project"), auth.ScopeRead)
	if err != nil {
		return 0, uuid.Nil, err
	}
	replay, err := api.ReplayID(r.PathValue("replay"))
	if err != nil {
		return 0, uuid.Nil, err
	}
	return project, replay, nil
}

// logStream records how one recording was served, or how its stream was
// cut (clientGone: by the client).
func logStream(r *http.Request, project int64, replay uuid.UUID, segs int, st fetchStats, ttfb, total time.Duration, err error, clientGone bool) {
	attrs := []any{
		"project_id", project, "replay_id", replay, "segments", segs, "reads", st.Reads,
		"bytes_read", st.BytesRead, "peak_held_bytes", st.PeakHeld, "forced_reads", st.Forced,
		"ttfb", ttfb, "duration", total,
	}
	switch {
	case err == nil:
		slog.InfoContext(r.Context(), "recording served", attrs...)
	case clientGone:
		slog.InfoContext(r.Context(), "recording abandoned by the client", append(attrs, "error", err)...)
	default:
		status, code := derrors.ToStatus(err)
		slog.ErrorContext(r.Context(), "recording stream cut", append(attrs, "status", status, "code", code, "error", err)...)
	}
}
