package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"golang.org/x/sync/errgroup"
)

// stackOptions configures startStack.
type stackOptions struct {
	// Binary is a replayvault executable; each function runs as `Binary
	// function` with FUNCTION_TARGET and PORT, exactly as Cloud Run runs it.
	Binary string
	// DataDir holds all state and is reused on restart; "" means a temp dir
	// that Stop removes.
	DataDir string
	// WebAddr is where the dev web server listens (host:port, port 0 = any).
	WebAddr string
	// NodeModules is the node_modules directory /vendor serves rrweb and
	// rrweb-player from; "" leaves /vendor answering with set-up help.
	NodeModules string
	// FlushAge is Pack's FLUSH_AGE (default devFlushAge).
	FlushAge time.Duration
	// LogLevel is the functions' LOG_LEVEL ("" = info).
	LogLevel string
	// FunctionLogs, if set, receives the functions' logs too, each line
	// prefixed with the function's name.
	FunctionLogs io.Writer
}

// stack is a running local system: the stand-ins of every cloud dependency,
// the three functions as child processes, and the dev web server.
type stack struct {
	opts    stackOptions
	dir     string
	ownsDir bool
	started time.Duration // how long startStack took

	pg  *testenv.Postgres
	gcs *testenv.GCS
	kms *testenv.KMS
	ps  *testenv.PubSub
	dsn string
	db  *store.DB

	pubsub    *pubsub.Client
	publisher *pubsub.Publisher // to the segment topic, for /ingest

	jwtSecret  string
	sweepToken string
	ingestKey  string // public ingest key of devProject, for the SDK pages

	funcs map[string]*function // by target: Pack, Serve, Shred, Ingest
	died  chan *function       // a function that exited before Stop

	webLn  net.Listener
	web    *http.Server
	webURL string

	metrics *metricSink // the functions' OTLP metrics, for /api/metrics
}

// startStack starts everything on 127.0.0.1 and returns once the functions
// listen and the push subscription delivers to Pack. On error, whatever did
// start is stopped again.
func startStack(ctx context.Context, o stackOptions) (_ *stack, err error) {
	start := time.Now()
	if o.Binary == "" {
		return nil, errors.New("stack: no replayvault binary to run the functions with")
	}
	if o.FlushAge <= 0 {
		o.FlushAge = devFlushAge
	}
	if o.WebAddr == "" {
		o.WebAddr = "127.0.0.1:0"
	}
	s := &stack{opts: o, funcs: map[string]*function{}, died: make(chan *function, 4), metrics: newMetricSink()}
	defer func() {
		if err != nil {
			if stopErr := s.Stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()

	if err := s.makeDir(); err != nil {
		return nil, err
	}
	// The web server's origin goes into Serve's and Shred's CORS_ORIGINS, so
	// its port is taken first.
	if s.webLn, err = net.Listen("tcp", o.WebAddr); err != nil {
		return nil, fmt.Errorf("dev web server: %w (pick another with --port)", err)
	}
	s.webURL = "http://" + s.webLn.Addr().String()
	if s.jwtSecret, err = s.secret(); err != nil {
		return nil, err
	}
	s.sweepToken = randomToken()

	if err := s.startDeps(ctx); err != nil {
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	if err := s.startFunctions(ctx); err != nil {
		return nil, err
	}
	if err := s.subscribePack(ctx); err != nil {
		return nil, err
	}
	s.web = &http.Server{Handler: s.webHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.web.Serve(s.webLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("dev web server", "err", err)
		}
	}()
	s.started = time.Since(start)
	return s, nil
}

// makeDir creates the state directory. PostgreSQL runs as an unprivileged
// user when we are root, so the directory must be enterable by others.
func (s *stack) makeDir() error {
	if s.opts.DataDir == "" {
		dir, err := os.MkdirTemp("", "replayvault-dev-")
		if err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		s.dir, s.ownsDir = dir, true
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	} else {
		dir, err := filepath.Abs(s.opts.DataDir)
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		s.dir = dir
	}
	if err := os.MkdirAll(s.logDir(), 0o755); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	return nil
}

func (s *stack) logDir() string { return filepath.Join(s.dir, "logs") }

// secret returns JWT_SECRET from the environment, else the one kept in the
// data dir (so tokens survive a restart), else a new random one.
func (s *stack) secret() (string, error) {
	if v := os.Getenv("JWT_SECRET"); v != "" {
		if len(v) < 32 {
			return "", errors.New("JWT_SECRET in the environment is shorter than 32 bytes; unset it to get a random one")
		}
		return v, nil
	}
	path := filepath.Join(s.dir, "jwt-secret")
	if !s.ownsDir {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) >= 32 {
			return string(bytes.TrimSpace(b)), nil
		}
	}
	v := randomToken()
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep JWT secret: %w", err)
	}
	return v, nil
}

// startDeps starts the stand-ins; PostgreSQL and the Pub/Sub emulator take
// seconds each, so they start side by side.
func (s *stack) startDeps(ctx context.Context) error {
	var (
		g   errgroup.Group
		pg  *testenv.Postgres
		ps  *testenv.PubSub
		gcs *testenv.GCS
		kms *testenv.KMS
	)
	g.Go(func() (err error) {
		pg, err = testenv.StartPostgres(ctx, filepath.Join(s.dir, "postgres"))
		return err
	})
	g.Go(func() (err error) {
		ps, err = testenv.StartPubSub(ctx, filepath.Join(s.dir, "pubsub"), devPubSubProject)
		return err
	})
	g.Go(func() (err error) {
		gcs, err = testenv.StartGCS(filepath.Join(s.dir, "gcs"), devBucket)
		return err
	})
	g.Go(func() (err error) {
		kms, err = testenv.StartKMSDir(filepath.Join(s.dir, "kms"))
		return err
	})
	err := g.Wait()
	// Keep whatever started so that Stop stops it.
	s.pg, s.ps, s.gcs, s.kms = pg, ps, gcs, kms
	return err
}

// prepare creates and migrates the database and creates the Pub/Sub
// topics; both may exist already in a reused data dir.
func (s *stack) prepare(ctx context.Context) error {
	if err := s.pg.CreateDatabase(ctx, devDatabase, ""); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42P04" { // duplicate_database
			return err
		}
	}
	s.dsn = s.pg.DSN(devDatabase)
	if err := store.Migrate(ctx, s.dsn); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	db, err := store.OpenURL(ctx, s.dsn)
	if err != nil {
		return err
	}
	s.db = db
	if s.ingestKey, err = s.devIngestKey(ctx); err != nil {
		return err
	}
	return s.createTopics(ctx)
}

// startFunctions runs Pack, Serve and Shred, each from the same binary with
// its own FUNCTION_TARGET, PORT and configuration, as they are deployed.
func (s *stack) startFunctions(ctx context.Context) error {
	common := []string{
		"DATABASE_URL=" + s.dsn,
		"BUCKET=" + devBucket,
		"STORAGE_EMULATOR_HOST=" + s.gcs.Host(),
		"LOG_LEVEL=" + s.opts.LogLevel,
	}
	kms := []string{"KMS_KEY=" + s.kms.KeyName(), "KMS_ENDPOINT=" + s.kms.Endpoint()}
	api := []string{
		"JWT_SECRET=" + s.jwtSecret,
		"CORS_ORIGINS=" + strings.Join(s.origins(), ","),
	}
	env := map[string][]string{
		"Pack": concat(common, kms, []string{
			"GOOGLE_CLOUD_PROJECT=" + devPubSubProject,
			"PUBSUB_EMULATOR_HOST=" + s.ps.Host(),
			"REJECT_TOPIC=" + devRejectTopic,
			"FLUSH_AGE=" + s.opts.FlushAge.String(),
		}),
		"Serve": concat(common, kms, api),
		// Shred's compaction re-encodes segments by default: it opens them.
		"Shred": concat(common, kms, api, []string{"SWEEP_TOKEN=" + s.sweepToken}),
		"Ingest": {
			"DATABASE_URL=" + s.dsn,
			"LOG_LEVEL=" + s.opts.LogLevel,
			"GOOGLE_CLOUD_PROJECT=" + devPubSubProject,
			"PUBSUB_EMULATOR_HOST=" + s.ps.Host(),
			"SEGMENT_TOPIC=" + devSegmentTopic,
			"POSTHOG_STATIC_DIR=" + s.posthogDist(),
		},
	}
	var mu sync.Mutex
	var g errgroup.Group
	for _, name := range []string{"Pack", "Serve", "Shred"} {
		g.Go(func() error {
			f, err := s.startFunction(ctx, name, concat(env[name], functionEnv(s.webURL, name)))
			if f != nil {
				mu.Lock()
				s.funcs[name] = f
				mu.Unlock()
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Ingest delivers to Pack directly (Pub/Sub only for what Pack does
	// not take), as deployed: it starts once Pack's URL is known.
	f, err := s.startFunction(ctx, "Ingest", concat(env["Ingest"], []string{"PACK_URL=" + s.funcs["Pack"].url}, functionEnv(s.webURL, "Ingest")))
	if f != nil {
		s.funcs["Ingest"] = f
	}
	return err
}

// origins are the dev web server's origins, by address and by name.
func (s *stack) origins() []string {
	_, port, _ := net.SplitHostPort(s.webLn.Addr().String())
	return []string{"http://127.0.0.1:" + port, "http://localhost:" + port}
}

func concat(parts ...[]string) []string {
	var all []string
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// Stop stops everything startStack started, functions first, and removes
// the state directory unless it was given. It is safe on a half-started
// stack.
func (s *stack) Stop() error {
	var errs []error
	if s.web != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.web.Shutdown(ctx); err != nil {
			s.web.Close()
		}
		cancel()
	} else if s.webLn != nil {
		s.webLn.Close()
	}
	for _, f := range s.funcs {
		if err := f.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.publisher != nil {
		s.publisher.Stop()
	}
	if s.pubsub != nil {
		s.pubsub.Close()
	}
	if s.db != nil {
		s.db.Close()
	}
	if s.ps != nil {
		if err := s.ps.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.pg != nil {
		if err := s.pg.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.gcs != nil {
		s.gcs.Stop()
	}
	if s.kms != nil {
		s.kms.Stop()
	}
	if s.ownsDir && s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove state dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// token mints a read+delete token for project, valid for devTokenTTL.
func (s *stack) token(project int64) (string, error) {
	return auth.Mint(s.jwtSecret, project, []string{auth.ScopeRead, auth.ScopeDelete, auth.ScopeIssueRead, auth.ScopeIssueWrite}, "replayvault-dev", devTokenTTL)
}
