package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

// web holds the dev web server's pages. Third-party code (rrweb,
// rrweb-player) is never embedded: /vendor serves it from node_modules,
// installed by npm ci from the repository's package-lock.json.
//
//go:embed web/*.html web/*.js web/*.css
var web embed.FS

// webPackages are the npm packages /vendor serves, each from its dist
// directory.
var webPackages = []string{"rrweb", "rrweb-player", "posthog-js"}

// maxIngestBytes is Pub/Sub's message size limit.
const maxIngestBytes = 10 << 20

var indexTemplate = template.Must(template.ParseFS(web, "web/index.html"))

// webHandler serves the viewer and recorder pages, the ingest endpoint that
// stands in for a production relay, the vendored rrweb files and a small
// JSON API the pages use.
func (s *stack) webHandler() http.Handler {
	static, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /recorder", servePage(static, "recorder.html"))
	mux.HandleFunc("GET /viewer", servePage(static, "viewer.html"))
	mux.HandleFunc("GET /posthog", servePage(static, "posthog.html"))
	mux.HandleFunc("GET /sentry", servePage(static, "sentry.html"))
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	for _, pkg := range webPackages {
		mux.Handle("GET /vendor/"+pkg+"/", http.StripPrefix("/vendor/"+pkg+"/", s.vendor(pkg)))
	}
	// @sentry/browser ships ES modules with bare imports, not a browser
	// bundle: the Sentry page maps them to these files with an import map.
	mux.Handle("GET /esm/", http.StripPrefix("/esm/", s.sentryModules()))
	mux.HandleFunc("POST /ingest", s.handleIngest)
	mux.HandleFunc("GET /api/config", s.handleConfig)
	mux.HandleFunc("GET /api/token", s.handleToken)
	// The functions' OTLP exporters send here; the charts read it back.
	mux.Handle("POST /v1/metrics", s.metrics)
	mux.Handle("POST /v1/traces", s.metrics)
	mux.HandleFunc("GET /api/metrics", s.handleMetrics)
	mux.HandleFunc("GET /metrics", servePage(static, "metrics.html"))
	return mux
}

func servePage(static fs.FS, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(static, name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	}
}

// vendor serves node_modules/pkg/dist, or set-up help when rrweb is not
// installed.
func (s *stack) vendor(pkg string) http.Handler {
	if s.opts.NodeModules == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, pkg+" is not installed: run `npm ci` in the repository root, then restart `replayvault-dev dev`", http.StatusServiceUnavailable)
		})
	}
	return http.FileServer(http.Dir(filepath.Join(s.opts.NodeModules, pkg, "dist")))
}

// handleIngest publishes the request body as one segment message to the
// segment topic, like a production relay in front of Pub/Sub would. The
// query names the attributes; Pack validates them (an invalid message goes
// to the reject topic, as in production).
//
//	POST /ingest?project=1&replay=UUID&segment=0[&type=recording][&retention_days=90]
func (s *stack) handleIngest(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	attrs := map[string]string{}
	for param, attr := range map[string]string{
		"project":        "project_id",
		"replay":         "replay_id",
		"segment":        "segment_id",
		"type":           "type",
		"retention_days": "retention_days",
	} {
		if v := q.Get(param); v != "" {
			attrs[attr] = v
		}
	}
	for _, required := range []string{"project_id", "replay_id", "segment_id"} {
		if attrs[required] == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "query needs project, replay and segment"})
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxIngestBytes))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
		return
	}
	if len(body) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "empty body: send the segment's events as a JSON array"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	id, err := s.publisher.Publish(ctx, &pubsub.Message{Data: body, Attributes: attrs}).Get(ctx)
	if err != nil {
		slog.Warn("ingest publish", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "publish: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message_id": id})
}

// handleConfig tells the pages where Serve and Shred are.
func (s *stack) handleConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"serve_url": s.funcs["Serve"].url,
		"shred_url": s.funcs["Shred"].url,
		"project":   devProject,
		// What an instrumented page pastes into its SDK's init.
		"ingest_url": s.funcs["Ingest"].url,
		"ingest_key": s.ingestKey,
		"sentry_dsn": sentryDSN(s.funcs["Ingest"].url, s.ingestKey, devProject),
	})
}

// handleToken mints a read+delete token for ?project= (default the dev
// project). The dev web server listens on loopback only; in production a
// token comes from the product's backend, never from an open endpoint.
func (s *stack) handleToken(w http.ResponseWriter, r *http.Request) {
	project, ok := projectParam(w, r)
	if !ok {
		return
	}
	tok, err := s.token(project)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "project": project, "expires_in": int(devTokenTTL.Seconds())})
}

// replaySummary is one row of the recent replays list, as Serve's list
// endpoint reports it.
type replaySummary struct {
	ProjectID    int64  `json:"project_id"`
	ReplayID     string `json:"replay_id"`
	SegmentCount int    `json:"segment_count"`
	RawBytes     int64  `json:"raw_bytes"`
	StartedAtMS  *int64 `json:"started_at_ms"`
	EndedAtMS    *int64 `json:"ended_at_ms"`
}

// Started is the replay's first event time, for the page.
func (r replaySummary) Started() time.Time {
	if r.StartedAtMS == nil {
		return time.Time{}
	}
	return time.UnixMilli(*r.StartedAtMS)
}

// recentReplays lists a project's newest replays through Serve's list
// endpoint, with a token of its own, as the product's backend would.
func (s *stack) recentReplays(ctx context.Context, project int64, limit int) ([]replaySummary, error) {
	tok, err := s.token(project)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := fmt.Sprintf("%s/v1/projects/%d/replays?limit=%d", s.funcs["Serve"].url, project, limit)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list replays: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list replays: Serve answered %s", resp.Status)
	}
	var body struct {
		Replays []replaySummary `json:"replays"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("list replays: %w", err)
	}
	return body.Replays, nil
}

// handleIndex is the start page: what runs where and the recent replays.
func (s *stack) handleIndex(w http.ResponseWriter, r *http.Request) {
	in, err := s.info()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	replays, err := s.recentReplays(r.Context(), devProject, 20)
	if err != nil {
		slog.Warn("index: list replays", "err", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := indexTemplate.Execute(w, map[string]any{"Info": in, "Replays": replays, "Vendored": s.opts.NodeModules != ""}); err != nil {
		slog.Warn("index page", "err", err)
	}
}

func projectParam(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.URL.Query().Get("project")
	if v == "" {
		return devProject, true
	}
	p, err := strconv.ParseInt(v, 10, 64)
	if err != nil || p <= 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "project must be a positive integer"})
		return 0, false
	}
	return p, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// findWebDeps returns the node_modules directory holding rrweb and
// rrweb-player: dir if given, else the repository's, running npm ci there
// first if they are missing. It returns "" (and says why) when they cannot
// be had; the stack then runs without the browser pages.
func findWebDeps(ctx context.Context, dir string, out io.Writer) string {
	if dir != "" {
		if err := checkWebDeps(dir); err != nil {
			fmt.Fprintf(out, "replayvault-dev dev: --web-deps %s: %v\n", dir, err)
			return ""
		}
		return dir
	}
	root, err := packageRoot()
	if err != nil {
		fmt.Fprintf(out, "replayvault-dev dev: %v; the recorder and viewer pages need rrweb from npm (pass --web-deps DIR)\n", err)
		return ""
	}
	nm := filepath.Join(root, "node_modules")
	if checkWebDeps(nm) == nil {
		return nm
	}
	if _, err := exec.LookPath("npm"); err != nil {
		fmt.Fprintf(out, "replayvault-dev dev: rrweb is not installed and npm is missing: install Node.js and npm (apt-get install -y nodejs npm), then run `npm ci` in %s\n", root)
		return ""
	}
	fmt.Fprintf(out, "replayvault-dev dev: installing rrweb and rrweb-player: npm ci in %s ...\n", root)
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(out, "replayvault-dev dev: npm ci failed (%v); the recorder and viewer pages will not work until it succeeds\n", err)
		return ""
	}
	if err := checkWebDeps(nm); err != nil {
		fmt.Fprintf(out, "replayvault-dev dev: after npm ci: %v\n", err)
		return ""
	}
	return nm
}

// checkWebDeps reports whether dir holds the dist files the pages load.
func checkWebDeps(dir string) error {
	for _, f := range []string{"rrweb/dist/rrweb.js", "rrweb-player/dist/rrweb-player.js", "rrweb-player/dist/style.css"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("%s is missing", filepath.Join(dir, f))
		}
	}
	return nil
}

// packageRoot finds the directory of the repository's package.json: the
// working directory or one of its parents that also holds go.mod.
func packageRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		_, errPkg := os.Stat(filepath.Join(dir, "package.json"))
		_, errMod := os.Stat(filepath.Join(dir, "go.mod"))
		if errPkg == nil && errMod == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the replayvault repository (no package.json next to go.mod above the working directory)")
		}
		dir = parent
	}
}

// sentryModules serves the ES modules of @sentry/browser and what they
// import (node_modules/@sentry/* and web-vitals; only .js and .mjs files,
// as JavaScript).
func (s *stack) sentryModules() http.Handler {
	if s.opts.NodeModules == "" {
		return s.vendor("@sentry/browser")
	}
	files := http.FileServer(http.Dir(s.opts.NodeModules))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !(strings.HasPrefix(p, "@sentry/") || strings.HasPrefix(p, "web-vitals/")) ||
			!(strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".mjs")) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		files.ServeHTTP(w, r)
	})
}
