// Package shred is the Shred function: the HTTP API that crypto-shreds
// replays (deletes the segment rows holding their only wrapped DEKs and
// tombstones them, so the bytes left in GCS can never be opened again) and
// the scheduled sweep that expires segments by retention and deletes the
// objects nothing points into any more.
package shred

import (
	"crypto/subtle"
	"errors"
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
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// MaxReplayIDs is how many replay ids one replays:shred call may name.
const MaxReplayIDs = 1000

// maxBodyBytes caps a request body: 1,000 UUIDs in JSON take about 40 KB.
const maxBodyBytes = 1 << 20

// Config is what the Shred function needs from config.Shred.
type Config struct {
	// CORSOrigins may call the delete API from a browser.
	CORSOrigins []string
	// SweepToken, when set, is the bearer token POST /v1/sweep requires.
	// Unset, the endpoint relies on Cloud Run IAM (only the scheduler's
	// service account and the configured invokers can reach it).
	SweepToken string
	// OrphanGrace is how old an object or blob row must be before the sweep
	// may delete it; it exceeds the longest flush.
	OrphanGrace time.Duration
	// SweepBatch is how many rows one sweep statement deletes.
	SweepBatch int
	// SweepBudget bounds one sweep run; whatever is left is done by the
	// next run.
	SweepBudget time.Duration
	// OrphanLookback is how many days of object prefixes before the grace
	// cutoff the orphan pass lists; 0 lists the whole bucket. Orphans older
	// than that are left to the bucket's lifecycle rule.
	OrphanLookback time.Duration
	// DeleteParallelism bounds the object deletes in flight (and the
	// compaction's reads).
	DeleteParallelism int
	// ProjectShredBudget bounds the deleting one whole-project shred
	// request does before it answers 202 with its progress; the sweep
	// finishes the rest. The tombstone is in force from the first moment.
	ProjectShredBudget time.Duration
	// CompactIdle is how long a replay must have had no new segment before
	// the sweep re-packs it into one object; 0 turns compaction off.
	CompactIdle time.Duration
	// CompactMaxBytes caps the sealed bytes of a replay that compaction
	// re-packs (they are held in memory); larger replays are left as they
	// are.
	CompactMaxBytes int64
	// CompactLevel, when set, makes compaction open every segment not yet
	// zstd and re-encode it to zstd at this level, sealed again under its
	// own wrapped DEK (Compact); the Service then needs WithKEKs. Zero
	// copies sealed bytes only.
	CompactLevel segment.Level
	// MaxDecompressed bounds a segment compaction decodes
	// (MAX_DECOMPRESSED_BYTES, as Pack and Serve).
	MaxDecompressed int64
}

// Defaults for the settings config.Shred does not carry.
const (
	// DefaultSweepBudget stays well inside Shred's request timeout (900 s in
	// Terraform).
	DefaultSweepBudget = 10 * time.Minute
	// DefaultOrphanLookback lets the sweep miss two days of runs and still
	// find every orphan.
	DefaultOrphanLookback = 72 * time.Hour
	// DefaultDeleteParallelism is the object deletes in flight.
	DefaultDeleteParallelism = 16
	// DefaultProjectShredBudget keeps a whole-project shred request well
	// inside Shred's request timeout.
	DefaultProjectShredBudget = time.Minute
)

// ConfigFrom derives the function's settings from its environment config.
func ConfigFrom(c *config.Shred) Config {
	return Config{
		CORSOrigins:        c.CORSOrigins,
		SweepToken:         c.SweepToken,
		OrphanGrace:        c.OrphanGrace,
		SweepBatch:         c.SweepBatch,
		SweepBudget:        DefaultSweepBudget,
		OrphanLookback:     DefaultOrphanLookback,
		DeleteParallelism:  DefaultDeleteParallelism,
		ProjectShredBudget: DefaultProjectShredBudget,
		CompactIdle:        c.CompactIdle,
		CompactMaxBytes:    c.CompactMaxBytes,
		CompactLevel:       compactLevel(c.CompactZstdLevel),
		MaxDecompressed:    c.MaxDecompressedBytes,
	}
}

// compactLevel reads a validated COMPACT_ZSTD_LEVEL: "off" (or anything
// config.Shred refuses) is 0, copy only.
func compactLevel(name string) segment.Level {
	l, err := segment.ParseLevel(name)
	if err != nil {
		return 0
	}
	return l
}

// Service serves the Shred function's HTTP API.
type Service struct {
	cfg      Config
	db       *store.DB
	blobs    blob.Store
	verifier *auth.Verifier
	now      func() time.Time
	// keks opens segments for compaction's re-encoding (WithKEKs); nil
	// when it only copies.
	keks *crypt.KEKCache
	// crashAt, set by tests, stops a compaction after a step.
	crashAt func(compactStep) error

	// Telemetry (WithTelemetry); all nil without.
	tel     *telemetry.Telemetry
	http    *telemetry.HTTP
	metrics *telemetry.Shred
}

// Option adjusts a Service.
type Option func(*Service)

// WithTelemetry traces and counts every request (h) and records receipts
// and sweeps in m.
func WithTelemetry(t *telemetry.Telemetry, h *telemetry.HTTP, m *telemetry.Shred) Option {
	return func(s *Service) { s.tel, s.http, s.metrics = t, h, m }
}

// WithKEKs gives compaction the read path's KEK cache, which it needs to
// re-encode segments (Config.CompactLevel).
func WithKEKs(keks *crypt.KEKCache) Option {
	return func(s *Service) { s.keks = keks }
}

// Telemetry creates Shred's instruments on t and returns the option that
// uses them.
func Telemetry(t *telemetry.Telemetry) (Option, error) {
	h, err := telemetry.NewHTTP(t, "shred")
	if err != nil {
		return nil, err
	}
	m, err := telemetry.NewShred(t)
	if err != nil {
		return nil, err
	}
	return WithTelemetry(t, h, m), nil
}

// New returns a Service.
func New(cfg Config, db *store.DB, blobs blob.Store, verifier *auth.Verifier, opts ...Option) *Service {
	if cfg.DeleteParallelism < 1 {
		cfg.DeleteParallelism = 1
	}
	s := &Service{cfg: cfg, db: db, blobs: blobs, verifier: verifier, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Handler routes the Shred API:
//
//	DELETE /v1/projects/{project}/replays/{replay}
//	POST   /v1/projects/{project}/replays:shred   {"replay_ids": [...]}
//	POST   /v1/projects/{project}:shred
//	POST   /v1/sweep
//
// Every error is a JSON body from api.WriteError.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/projects/{project}/replays/{replay}", s.deleteReplay)
	mux.HandleFunc("/v1/projects/{project}/replays:shred", s.shredReplays)
	// A wildcard must fill its whole path segment, so "{project}:shred"
	// cannot be a pattern: the segment is split here instead.
	mux.HandleFunc("/v1/projects/{projectop}", s.shredProject)
	mux.HandleFunc("/v1/sweep", s.sweep)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, r, fmt.Errorf("%w: no route %s %s", derrors.NotFound, r.Method, r.URL.Path), nil)
	})
	h := api.CORS(s.cfg.CORSOrigins, "DELETE, POST", mux)
	if s.tel != nil {
		h = s.tel.Handler("shred", s.http, shredRoute, h)
	}
	return h
}

// shredRoute names a request's route for metrics, without its ids.
func shredRoute(r *http.Request) string {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodOptions:
		return "preflight"
	case p == "/v1/sweep":
		return "sweep"
	case strings.HasSuffix(p, "replays:shred"):
		return "shred_replays"
	case strings.HasSuffix(p, ":shred"):
		return "shred_project"
	case strings.Contains(p, "/replays/"):
		return "delete_replay"
	default:
		return "other"
	}
}

func (s *Service) deleteReplay(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodDelete) {
		return
	}
	project, who, err := s.authorize(r, r.PathValue("project"), auth.ScopeDelete)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	replay, err := api.ReplayID(r.PathValue("replay"))
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	rc, err := s.db.ShredReplays(r.Context(), project, []uuid.UUID{replay}, who)
	s.answer(w, r, rc, err)
}

func (s *Service) shredReplays(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	project, who, err := s.authorize(r, r.PathValue("project"), auth.ScopeDelete)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	var body struct {
		ReplayIDs []string `json:"replay_ids"`
	}
	if err := decodeBodyOf(w, r, &body); err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	ids, err := parseReplayIDs(body.ReplayIDs)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	rc, err := s.db.ShredReplays(r.Context(), project, ids, who)
	s.answer(w, r, rc, err)
}

func (s *Service) shredProject(w http.ResponseWriter, r *http.Request) {
	p, op, ok := strings.Cut(r.PathValue("projectop"), ":")
	if !ok || op != "shred" {
		api.WriteError(w, r, fmt.Errorf("%w: no route %s %s", derrors.NotFound, r.Method, r.URL.Path), nil)
		return
	}
	if !allow(w, r, http.MethodPost) {
		return
	}
	project, who, err := s.authorize(r, p, auth.ScopeProjectDelete)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	// The body must be empty or {}: a caller who sends replay ids here
	// meant replays:shred, and must not lose the whole project by mistake.
	var body struct{}
	if err := decodeBodyOf(w, r, &body); err != nil && !errors.Is(err, api.ErrEmptyBody) {
		api.WriteError(w, r, fmt.Errorf("%w (this route shreds the whole project and takes no parameters)", err), nil)
		return
	}
	rc, err := s.db.ShredProjectLimited(r.Context(), project, who,
		store.ShredLimits{Batch: s.cfg.SweepBatch, Budget: s.cfg.ProjectShredBudget})
	s.answer(w, r, rc, err)
}

// authorize checks the caller's token grants scope (replay:delete, or
// project:delete for a whole-project shred) on the project named by the
// path value p (api.Authorize), and returns the project and who the
// receipt names.
func (s *Service) authorize(r *http.Request, p, scope string) (int64, string, error) {
	project, claims, err := api.Authorize(r, s.verifier, p, scope)
	if err != nil {
		return 0, "", err
	}
	if claims.Subject == "" {
		return project, "unknown", nil
	}
	return project, claims.Subject, nil
}

// receiptKind is the kind attribute of a receipt's metric.
func receiptKind(rc store.Receipt) string {
	if rc.WholeProject {
		return "project"
	}
	return "replays"
}

// receipt is the JSON form of a store.Receipt.
type receipt struct {
	ReceiptID        uuid.UUID   `json:"receipt_id"`
	ProjectID        int64       `json:"project_id"`
	ReplayIDs        []uuid.UUID `json:"replay_ids"`
	WholeProject     bool        `json:"whole_project"`
	SegmentsShredded int64       `json:"segments_shredded"`
	ShreddedAt       time.Time   `json:"shredded_at"`
	// Complete is false while a whole-project shred still deletes rows in
	// the background (answered 202); segments_shredded is its progress.
	Complete bool `json:"complete"`
}

func (s *Service) answer(w http.ResponseWriter, r *http.Request, rc store.Receipt, err error) {
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	slog.InfoContext(r.Context(), "shredded", "receipt_id", rc.ID, "project_id", rc.ProjectID,
		"replays", len(rc.ReplayIDs), "whole_project", rc.WholeProject,
		"segments_shredded", rc.SegmentsShredded, "complete", rc.Complete, "requested_by", rc.RequestedBy)
	s.metrics.Receipt(r.Context(), receiptKind(rc), rc.SegmentsShredded)
	ids := rc.ReplayIDs
	if ids == nil {
		ids = []uuid.UUID{}
	}
	status := http.StatusOK
	if !rc.Complete {
		status = http.StatusAccepted
	}
	api.WriteJSON(w, status, receipt{
		ReceiptID:        rc.ID,
		ProjectID:        rc.ProjectID,
		ReplayIDs:        ids,
		WholeProject:     rc.WholeProject,
		SegmentsShredded: rc.SegmentsShredded,
		ShreddedAt:       rc.ShreddedAt.UTC(),
		Complete:         rc.Complete,
	})
}

func (s *Service) sweep(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	if s.cfg.SweepToken != "" {
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(raw)), []byte(s.cfg.SweepToken)) != 1 {
			api.WriteError(w, r, fmt.Errorf("%w: sweep needs the SWEEP_TOKEN bearer token", auth.ErrUnauthenticated), nil)
			return
		}
	}
	rep, err := s.Sweep(r.Context())
	if err != nil {
		api.WriteError(w, r, err, map[string]any{"report": rep})
		return
	}
	api.WriteJSON(w, http.StatusOK, rep)
}

// allow answers 405 unless r uses method.
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	api.WriteError(w, r, fmt.Errorf("%w: %s %s; use %s", derrors.MethodNotAllowed, r.Method, r.URL.Path, method), nil)
	return false
}

// parseReplayIDs checks a replays:shred list: 1 to MaxReplayIDs UUIDs;
// duplicates collapse (the store sorts and dedups).
func parseReplayIDs(raw []string) ([]uuid.UUID, error) {
	switch {
	case raw == nil:
		return nil, fmt.Errorf(`%w: replay_ids is required: {"replay_ids": ["<uuid>", ...]}`, derrors.InvalidArgument)
	case len(raw) == 0:
		return nil, fmt.Errorf("%w: replay_ids is empty", derrors.InvalidArgument)
	case len(raw) > MaxReplayIDs:
		return nil, fmt.Errorf("%w: replay_ids has %d entries; at most %d per request", derrors.InvalidArgument, len(raw), MaxReplayIDs)
	}
	ids := make([]uuid.UUID, len(raw))
	for i, s := range raw {
		id, err := api.ReplayID(s)
		if err != nil {
			return nil, fmt.Errorf("%w: replay_ids[%d] %q is not a UUID", derrors.InvalidArgument, i, s)
		}
		ids[i] = id
	}
	return ids, nil
}

// decodeBodyOf reads a request body of at most maxBodyBytes bytes (api.DecodeJSON).
func decodeBodyOf(w http.ResponseWriter, r *http.Request, v any) error {
	return api.DecodeJSON(w, r, v, maxBodyBytes)
}
