// Package ingest is the Ingest function: the public front door that replay
// SDKs send to unchanged. It speaks Sentry's envelope protocol, posthog-js's
// snapshot batches and a plain rrweb segment upload; checks the ingest key,
// its origins, rate limits, sizes and framing; and publishes one message per
// segment to the segments topic, with the attributes Pack reads and the
// replay's metadata — or, with PACK_URL, hands it to Pack directly and
// publishes only what Pack did not store (deliver.go). It answers the SDK
// only after Pack stored or Pub/Sub accepted every message. Pack stays the
// one place that fully validates and stores.
package ingest

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// Config is what Ingest needs from config.Ingest.
type Config struct {
	// MaxBodyBytes caps a request body as sent (413 past it).
	MaxBodyBytes int64
	// MaxDecompressed caps what one request decompresses to.
	MaxDecompressed int64
	// KeyCacheTTL is how long a key lookup is trusted.
	KeyCacheTTL time.Duration
	// Token buckets per key and per project on one instance.
	KeyRate      float64
	KeyBurst     int
	ProjectRate  float64
	ProjectBurst int
	// RetentionDays is the retention class of ingested segments.
	RetentionDays int
	// PostHogStaticDir holds posthog-js's dist files served under /static/.
	PostHogStaticDir string
}

// ConfigFrom derives Ingest's settings from the function's config.
func ConfigFrom(c *config.Ingest) Config {
	return Config{
		MaxBodyBytes:     c.MaxBodyBytes,
		MaxDecompressed:  c.MaxDecompressedBytes,
		KeyCacheTTL:      c.KeyCacheTTL,
		KeyRate:          c.KeyRate,
		KeyBurst:         c.KeyBurst,
		ProjectRate:      c.ProjectRate,
		ProjectBurst:     c.ProjectBurst,
		RetentionDays:    c.RetentionDays,
		PostHogStaticDir: c.PostHogStaticDir,
	}
}

// Server answers the Ingest endpoints. It is safe for concurrent use.
type Server struct {
	cfg     Config
	db      *store.DB
	keys    *keyCache
	limits  *limiter
	pub     *Publisher
	now     func() time.Time
	handler http.Handler
}

// New returns a Server. db is only read for keys and written for the
// numbers of batches that come without one.
func New(cfg Config, db *store.DB, pub *Publisher) *Server {
	s := &Server{
		cfg:    cfg,
		db:     db,
		keys:   newKeyCache(db, cfg.KeyCacheTTL),
		limits: newLimiter(cfg.KeyRate, cfg.KeyBurst, cfg.ProjectRate, cfg.ProjectBurst),
		pub:    pub,
		now:    time.Now,
	}
	mux := http.NewServeMux()
	// Sentry (Relay's wire format).
	mux.HandleFunc("POST /api/{project}/envelope/", s.sentryEnvelope)
	mux.HandleFunc("POST /api/{project}/envelope", s.sentryEnvelope)
	// posthog-js.
	mux.HandleFunc("POST /s/", s.posthogSnapshots)
	mux.HandleFunc("POST /s", s.posthogSnapshots)
	mux.HandleFunc("/flags/", s.posthogFlags)
	mux.HandleFunc("/decide/", s.posthogFlags)
	mux.HandleFunc("GET /array/{token}/{file}", s.posthogRemoteConfig)
	mux.HandleFunc("GET /static/", s.posthogStatic)
	for _, p := range []string{"/e/", "/i/v0/e/", "/batch/", "/engage/", "/track/", "/capture/"} {
		mux.HandleFunc("POST "+p, s.posthogDropped)
	}
	// Plain rrweb.
	mux.HandleFunc("POST /v1/projects/{project}/replays/{replay}/segments/{segment}", s.rrwebSegment)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path))
	})
	s.handler = mux
	return s
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodOptions {
		s.preflight(w, r)
		return
	}
	s.handler.ServeHTTP(w, r)
}

// preflight answers a browser's CORS preflight. When the key is in the URL
// (Sentry's sentry_key, rrweb's key) its origins decide; posthog-js sends its
// token in the body, so there the actual request is checked instead and the
// preflight only lets the browser send it.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		writeError(w, r, errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path))
		return
	}
	if public := urlKey(r); public != "" {
		k, err := s.keys.lookup(r.Context(), public)
		if err == nil && !originAllowed(k.Origins, origin) {
			err = errorf(http.StatusForbidden, "origin_not_allowed", "origin is not allowed for this ingest key")
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, X-Sentry-Auth, X-Replayvault-Key")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// urlKey is a key carried in the URL or a header rather than the body.
func urlKey(r *http.Request) string {
	if k := r.URL.Query().Get("sentry_key"); k != "" {
		return k
	}
	if k := sentryAuthKey(r.Header.Get("X-Sentry-Auth")); k != "" {
		return k
	}
	if k := r.URL.Query().Get("key"); k != "" {
		return k
	}
	return r.Header.Get("X-Replayvault-Key")
}

// admit looks the key up and applies it: project, origin, rate limits.
func (s *Server) admit(ctx context.Context, r *http.Request, public string, project int64) (*store.IngestKey, error) {
	k, err := s.keys.lookup(ctx, public)
	if err != nil {
		return nil, err
	}
	if err := checkKey(k, project, r); err != nil {
		return nil, err
	}
	if err := s.limits.allow(k.PublicKey, k.ProjectID, s.now()); err != nil {
		return k, err
	}
	return k, nil
}

// readBody reads the request body up to MaxBodyBytes (413 past it) and
// undoes a Content-Encoding of gzip or deflate, bounded by MaxDecompressed.
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge(s.cfg.MaxBodyBytes)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, badRequest("bad_body", "read body: %v", err)
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return nil, tooLarge(s.cfg.MaxBodyBytes)
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return body, nil
	case "gzip", "x-gzip":
		return s.decode(segment.Gzip, body, "body")
	case "deflate":
		// HTTP's deflate is zlib; some clients send raw deflate.
		if segment.Detect(body) == segment.Zlib {
			return s.decode(segment.Zlib, body, "body")
		}
		out, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(body)), s.cfg.MaxDecompressed+1))
		if err != nil {
			return nil, badRequest("bad_compression", "body: deflate stream is corrupt")
		}
		if int64(len(out)) > s.cfg.MaxDecompressed {
			return nil, tooLarge(s.cfg.MaxDecompressed)
		}
		return out, nil
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "bad_content_encoding", "Content-Encoding %.20q is not supported (gzip, deflate)", enc)
	}
}

// decode decompresses data, bounded by MaxDecompressed: a bomb is refused
// with 413 as soon as it passes the limit.
func (s *Server) decode(enc segment.Encoding, data []byte, what string) ([]byte, error) {
	out, err := segment.Decode(enc, data, s.cfg.MaxDecompressed)
	if reason, ok := segment.Reason(err); ok {
		if reason == segment.ReasonDecompressedTooLarge {
			return nil, errorf(http.StatusRequestEntityTooLarge, "decompressed_too_large",
				"%s decompresses to more than %d bytes", what, s.cfg.MaxDecompressed)
		}
		return nil, badRequest("bad_compression", "%s: %s stream is corrupt", what, enc)
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return out, nil
}

// checkPayload checks what Ingest cheaply can of a segment payload it
// forwards as sent: not empty, a JSON array, and not a decompression bomb.
// It decompresses only the first sniffBytes: decompressing all of it would
// cost Ingest most of what Pack's validation costs, and Pack validates (and
// bounds) the whole payload anyway. A bomb shows in that prefix as a ratio
// no rrweb JSON reaches (deflate tops out near 1,000:1; recordings compress
// 5-50:1), or in a gzip trailer that states a size over the limit; either is
// refused with 413 and never reaches the topic. What the prefix cannot show
// (a stream that breaks later, a crafted trailer) Pack rejects.
func (s *Server) checkPayload(data []byte, what string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return badRequest("empty_segment", "%s is empty", what)
	}
	enc := segment.Detect(data)
	head := data
	switch enc {
	case segment.Plain:
		if int64(len(data)) > s.cfg.MaxDecompressed {
			return tooLarge(s.cfg.MaxDecompressed)
		}
	case segment.Gzip, segment.Zlib, segment.Zstd:
		in := bytes.NewReader(data)
		r, err := openStream(enc, in)
		if err != nil {
			return badRequest("bad_compression", "%s: %s stream is corrupt", what, enc)
		}
		buf := make([]byte, sniffBytes)
		n, err := readPrefix(r, buf)
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		switch {
		case err == io.EOF: // all of it, and the stream ended well
		case err != nil:
			return badRequest("bad_compression", "%s: %s stream is corrupt", what, enc)
		default:
			if consumed := int64(len(data) - in.Len()); int64(n) > maxRatio*max(consumed, 1) {
				return s.bomb(what)
			}
		}
		if enc == segment.Gzip && len(data) >= 18 && int64(binary.LittleEndian.Uint32(data[len(data)-4:])) > s.cfg.MaxDecompressed {
			return s.bomb(what)
		}
		head = buf[:n]
	}
	if t := bytes.TrimLeft(head, " \t\r\n"); len(t) == 0 || t[0] != '[' {
		return badRequest("not_an_array", "%s is not a JSON array of rrweb events", what)
	}
	return nil
}

const (
	// sniffBytes is how much of a compressed payload Ingest decompresses.
	sniffBytes = 64 << 10
	// maxRatio is the decompressed:compressed ratio past which the prefix
	// is taken for a bomb.
	maxRatio = 500
)

func (s *Server) bomb(what string) *Error {
	return errorf(http.StatusRequestEntityTooLarge, "decompressed_too_large",
		"%s decompresses to more than %d bytes (or at a ratio over %d:1)", what, s.cfg.MaxDecompressed, maxRatio)
}

// readPrefix fills buf from r. It returns io.EOF when the stream ended
// cleanly before buf was full, nil when buf is full, and r's error (a
// truncated or corrupt stream) otherwise.
func readPrefix(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// openStream opens a decompressing reader; in must be read through it only.
func openStream(enc segment.Encoding, in *bytes.Reader) (io.Reader, error) {
	switch enc {
	case segment.Gzip:
		return gzip.NewReader(in)
	case segment.Zlib:
		return zlib.NewReader(in)
	default:
		d, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
}

func tooLarge(limit int64) *Error {
	return errorf(http.StatusRequestEntityTooLarge, "too_large", "request body is over %d bytes", limit)
}

// segmentMessage is the message of one segment: the attributes Pack reads,
// then the replay's metadata.
func (s *Server) segmentMessage(project int64, replay uuid.UUID, seg int, meta replaymeta.Meta, data []byte) message {
	attrs := map[string]string{
		segment.AttrProjectID:     strconv.FormatInt(project, 10),
		segment.AttrReplayID:      replay.String(),
		segment.AttrSegmentID:     strconv.Itoa(seg),
		segment.AttrRetentionDays: strconv.Itoa(s.cfg.RetentionDays),
		segment.AttrType:          segment.DefaultType,
	}
	meta.AddTo(attrs)
	return message{attrs: attrs, data: data}
}

// publish sends msgs; nothing to send is success.
func (s *Server) publish(ctx context.Context, msgs []message) error {
	if len(msgs) == 0 {
		return nil
	}
	return s.pub.Publish(ctx, msgs)
}

// userAgentFamily names the browser of a User-Agent header, coarsely: the
// metadata wants "Chrome" or "Firefox", never the full string (which
// fingerprints a user).
func userAgentFamily(ua string) string {
	switch {
	case ua == "":
		return ""
	case strings.Contains(ua, "Edg/"):
		return "Edge"
	case strings.Contains(ua, "OPR/"):
		return "Opera"
	case strings.Contains(ua, "Firefox/"):
		return "Firefox"
	case strings.Contains(ua, "Chrome/") || strings.Contains(ua, "Chromium/") || strings.Contains(ua, "HeadlessChrome/"):
		return "Chrome"
	case strings.Contains(ua, "Safari/"):
		return "Safari"
	}
	return "Other"
}

// writeOK answers a stored request.
func writeOK(w http.ResponseWriter, body any) {
	api.WriteJSON(w, http.StatusOK, body)
}
