package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/logging"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

// The local stack's fixed names. The Pub/Sub emulator accepts any project.
const (
	devPubSubProject    = "local"
	devSegmentTopic     = "segments"
	devRejectTopic      = "segments-rejected"
	devPushSubscription = "pack"
	devBucket           = "replayvault-local"
	devDatabase         = "replayvault"
	// devProject is the replayvault project of the printed token and the
	// recorder page's default.
	devProject  int64 = 1
	devTokenTTL       = 24 * time.Hour
	// devFlushAge is Pack's FLUSH_AGE locally. The emulator pushes at most
	// two messages at a time per subscription, so a batch never fills and
	// every segment waits for the age: keep it short (see DESIGN.md).
	devFlushAge = 50 * time.Millisecond
	// devAckDeadline is the push subscription's ack deadline: longer than
	// any flush, so the emulator does not redeliver a segment Pack still
	// holds.
	devAckDeadline = 60 * time.Second
	// devStartTimeout bounds the whole stack's start; the Pub/Sub emulator
	// (a JVM) dominates it.
	devStartTimeout = 3 * time.Minute
)

// runDev runs the whole system on loopback until ctx is cancelled (Ctrl-C),
// or with --smoke checks it end to end once and exits.
func runDev(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault-dev dev", "[--port 8080] [--data-dir DIR] [--smoke] [-v]")
	port := fs.Int("port", 8080, "port of the dev web server (viewer, recorder, ingest) on 127.0.0.1; 0 picks a free one")
	dataDir := fs.String("data-dir", "", "keep all state (database, objects, KMS seed, logs) in `DIR` and reuse it on restart; default: a temp dir removed on exit")
	smoke := fs.Bool("smoke", false, "start the stack, push a generated session through it, read it back, shred it, print one line and exit")
	smokeSegments := fs.Int("smoke-segments", 30, "segments the smoke check publishes")
	flushAge := fs.Duration("flush-age", devFlushAge, "Pack's FLUSH_AGE")
	verbose := fs.Bool("v", false, "also print the functions' logs (they always go to files under the data dir)")
	binary := fs.String("binary", "", "replayvault `executable` to run the functions with (default: this program)")
	infoFile := fs.String("info-file", "", "once ready, write the stack's URLs and a token as JSON to `FILE` (for scripts and tests)")
	webDeps := fs.String("web-deps", "", "node_modules `DIR` holding rrweb and rrweb-player (default: the repository's, installed with npm ci if missing)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *smoke && *smokeSegments < 1 {
		return errors.New("--smoke-segments must be at least 1")
	}

	// The stack's own progress logs are noise next to the table unless asked
	// for; warnings and errors still show.
	level := "warn"
	if *verbose {
		level = os.Getenv("LOG_LEVEL")
	}
	slog.SetDefault(logging.New(os.Stderr, level))

	opts := stackOptions{
		Binary:   *binary,
		DataDir:  *dataDir,
		WebAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)),
		FlushAge: *flushAge,
		LogLevel: os.Getenv("LOG_LEVEL"),
	}
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this program to run the functions with (pass --binary): %w", err)
		}
		opts.Binary = exe
	}
	if *verbose {
		opts.FunctionLogs = os.Stderr
	}
	if *smoke {
		// The smoke check needs no browser assets and must not collide
		// with a dev stack already running on the default port.
		if !flagSet(fs, "port") {
			opts.WebAddr = "127.0.0.1:0"
		}
	} else {
		opts.NodeModules = findWebDeps(ctx, *webDeps, out)
	}

	startCtx, cancel := context.WithTimeout(ctx, devStartTimeout)
	defer cancel()
	if !*smoke {
		fmt.Fprintln(out, "replayvault-dev dev: starting PostgreSQL, fake-gcs-server, KMS, the Pub/Sub emulator, Pack, Serve and Shred ...")
	}
	s, err := startStack(startCtx, opts)
	if err != nil {
		if ctx.Err() != nil {
			// Ctrl-C during the start: what did start is stopped again.
			return nil
		}
		return err
	}
	defer func() {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "replayvault-dev dev: stop:", err)
		}
	}()
	if *infoFile != "" {
		if err := s.writeInfo(*infoFile); err != nil {
			return err
		}
	}

	if *smoke {
		line, err := runSmoke(ctx, s, *smokeSegments)
		if err != nil {
			return fmt.Errorf("smoke: FAILED: %w\n%s", err, s.logTails(15))
		}
		fmt.Fprintln(out, line)
		return nil
	}

	s.printTable(out)
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "\nreplayvault-dev dev: stopping ...")
		return nil
	case f := <-s.died:
		return fmt.Errorf("function %s exited unexpectedly (%v); log %s:\n%s", f.name, f.waitErr, f.logPath, tail(f.logPath, 20))
	}
}

// flagSet reports whether the command line set flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

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

	funcs map[string]*function // by target: Pack, Serve, Shred
	died  chan *function       // a function that exited before Stop

	webLn  net.Listener
	web    *http.Server
	webURL string
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
	s := &stack{opts: o, funcs: map[string]*function{}, died: make(chan *function, 3)}
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

// prepare creates and migrates the database and the Pub/Sub topics; both
// may exist already in a reused data dir.
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

	if s.pubsub, err = s.ps.Client(ctx); err != nil {
		return err
	}
	for _, t := range []string{devSegmentTopic, devRejectTopic} {
		_, err := s.pubsub.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: s.topicName(t)})
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	s.publisher = s.pubsub.Publisher(s.topicName(devSegmentTopic))
	return nil
}

func (s *stack) topicName(id string) string {
	return fmt.Sprintf("projects/%s/topics/%s", devPubSubProject, id)
}

func (s *stack) subscriptionName(id string) string {
	return fmt.Sprintf("projects/%s/subscriptions/%s", devPubSubProject, id)
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
		"Shred": concat(common, api, []string{"SWEEP_TOKEN=" + s.sweepToken}),
	}
	var mu sync.Mutex
	var g errgroup.Group
	for _, name := range []string{"Pack", "Serve", "Shred"} {
		g.Go(func() error {
			f, err := s.startFunction(ctx, name, env[name])
			if f != nil {
				mu.Lock()
				s.funcs[name] = f
				mu.Unlock()
			}
			return err
		})
	}
	return g.Wait()
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

// function is one functions-framework server: a child process in its own
// process group.
type function struct {
	name    string
	url     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // set before exited closes
	ready   atomic.Bool   // it listened: an exit from now on is news
	stopped atomic.Bool   // stop was called: an exit from now on is expected
}

// startFunction starts one function on a free port and waits until it
// accepts connections. A lost race for the port is retried.
func (s *stack) startFunction(ctx context.Context, name string, env []string) (*function, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		f, err := s.launch(ctx, name, env)
		if err == nil {
			return f, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func (s *stack) launch(ctx context.Context, name string, env []string) (*function, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	f := &function{
		name:    name,
		url:     "http://127.0.0.1:" + strconv.Itoa(port),
		logPath: filepath.Join(s.logDir(), strings.ToLower(name)+".log"),
		exited:  make(chan struct{}),
	}
	logFile, err := os.OpenFile(f.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	var w io.Writer = logFile
	var prefixed *prefixWriter
	if s.opts.FunctionLogs != nil {
		// Through a pipe: the child's output is copied while it runs.
		prefixed = &prefixWriter{w: s.opts.FunctionLogs, prefix: fmt.Sprintf("[%-5s] ", strings.ToLower(name))}
		w = io.MultiWriter(logFile, prefixed)
	}

	f.cmd = exec.Command(s.opts.Binary, "function")
	// Later entries win: ours override anything inherited.
	f.cmd.Env = append(os.Environ(), append(env, "FUNCTION_TARGET="+name, "PORT="+strconv.Itoa(port))...)
	f.cmd.Stdout, f.cmd.Stderr = w, w
	// Its own process group, so Stop ends it and anything it started; killed
	// with us if we die without stopping it.
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		f.waitErr = f.cmd.Wait()
		// Only now: with -v a goroutine copies the child's output into it
		// until the child exits.
		logFile.Close()
		close(f.exited)
		if f.ready.Load() && !f.stopped.Load() {
			select {
			case s.died <- f:
			default:
			}
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			c.Close()
			f.ready.Store(true)
			return f, nil
		}
		select {
		case <-f.exited:
			return nil, fmt.Errorf("function %s exited during start (%v); log %s:\n%s", name, f.waitErr, f.logPath, tail(f.logPath, 20))
		case <-ctx.Done():
			f.stop()
			return nil, fmt.Errorf("function %s did not listen on port %d: %w; log %s:\n%s", name, port, ctx.Err(), f.logPath, tail(f.logPath, 20))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// stop ends the function's process group: SIGTERM, then SIGKILL after a
// grace period.
func (f *function) stop() error {
	f.stopped.Store(true)
	pgid := f.cmd.Process.Pid // Setpgid: its pid is its group id
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: %w", f.name, err)
	}
	select {
	case <-f.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-f.exited
	}
	return nil
}

// subscribePack points the push subscription at Pack. The endpoint's path
// names the topic: functions-framework turns a plain push request into the
// CloudEvent Pack takes and needs the topic for the event's source.
func (s *stack) subscribePack(ctx context.Context) error {
	endpoint := s.funcs["Pack"].url + "/" + s.topicName(devSegmentTopic)
	sub := &pubsubpb.Subscription{
		Name:               s.subscriptionName(devPushSubscription),
		Topic:              s.topicName(devSegmentTopic),
		AckDeadlineSeconds: int32(devAckDeadline / time.Second),
		PushConfig:         &pubsubpb.PushConfig{PushEndpoint: endpoint},
	}
	_, err := s.pubsub.SubscriptionAdminClient.CreateSubscription(ctx, sub)
	if status.Code(err) == codes.AlreadyExists {
		// A reused emulator state: Pack has a new port now.
		err = s.pubsub.SubscriptionAdminClient.ModifyPushConfig(ctx, &pubsubpb.ModifyPushConfigRequest{
			Subscription: sub.Name,
			PushConfig:   sub.PushConfig,
		})
	}
	if err != nil {
		return fmt.Errorf("push subscription to Pack: %w", err)
	}
	return nil
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

// stackInfo is what --info-file writes and /api/config partly serves.
type stackInfo struct {
	WebURL              string  `json:"web_url"`
	RecorderURL         string  `json:"recorder_url"`
	ViewerURL           string  `json:"viewer_url"`
	PackURL             string  `json:"pack_url"`
	ServeURL            string  `json:"serve_url"`
	ShredURL            string  `json:"shred_url"`
	DatabaseURL         string  `json:"database_url"`
	StorageEmulatorHost string  `json:"storage_emulator_host"`
	Bucket              string  `json:"bucket"`
	KMSEndpoint         string  `json:"kms_endpoint"`
	KMSKey              string  `json:"kms_key"`
	PubSubEmulatorHost  string  `json:"pubsub_emulator_host"`
	PubSubProject       string  `json:"pubsub_project"`
	Topic               string  `json:"topic"`
	RejectTopic         string  `json:"reject_topic"`
	Subscription        string  `json:"subscription"`
	Project             int64   `json:"project"`
	Token               string  `json:"token"`
	DataDir             string  `json:"data_dir"`
	LogDir              string  `json:"log_dir"`
	StartSeconds        float64 `json:"start_seconds"`
}

func (s *stack) info() (stackInfo, error) {
	tok, err := s.token(devProject)
	if err != nil {
		return stackInfo{}, err
	}
	return stackInfo{
		WebURL:              s.webURL,
		RecorderURL:         s.webURL + "/recorder",
		ViewerURL:           fmt.Sprintf("%s/viewer?project=%d&token=%s", s.webURL, devProject, tok),
		PackURL:             s.funcs["Pack"].url,
		ServeURL:            s.funcs["Serve"].url,
		ShredURL:            s.funcs["Shred"].url,
		DatabaseURL:         s.dsn,
		StorageEmulatorHost: s.gcs.Host(),
		Bucket:              devBucket,
		KMSEndpoint:         s.kms.Endpoint(),
		KMSKey:              s.kms.KeyName(),
		PubSubEmulatorHost:  s.ps.Host(),
		PubSubProject:       devPubSubProject,
		Topic:               s.topicName(devSegmentTopic),
		RejectTopic:         s.topicName(devRejectTopic),
		Subscription:        s.subscriptionName(devPushSubscription),
		Project:             devProject,
		Token:               tok,
		DataDir:             s.dir,
		LogDir:              s.logDir(),
		StartSeconds:        s.started.Seconds(),
	}, nil
}

// writeInfo writes the stack's info as JSON, atomically: a reader polling
// for the file never sees half of it.
func (s *stack) writeInfo(path string) error {
	in, err := s.info()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("info file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("info file: %w", err)
	}
	return nil
}

// printTable tells what runs where, with a token and the pages to open.
func (s *stack) printTable(out io.Writer) {
	in, err := s.info()
	if err != nil {
		fmt.Fprintln(out, "replayvault-dev dev:", err)
		return
	}
	state := s.dir + " (removed on exit; --data-dir keeps it)"
	if !s.ownsDir {
		state = s.dir + " (kept)"
	}
	fmt.Fprintf(out, "\nreplayvault-dev dev: ready in %.1fs\n\n", s.started.Seconds())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  web: recorder, viewer, ingest\t%s\n", in.WebURL)
	fmt.Fprintf(tw, "  Pack (functions-framework)\t%s\t<- push subscription %s on %s\n", in.PackURL, devPushSubscription, in.Topic)
	fmt.Fprintf(tw, "  Serve (functions-framework)\t%s\t/v1/projects/{p}/replays/{r}[/recording]\n", in.ServeURL)
	fmt.Fprintf(tw, "  Shred (functions-framework)\t%s\tDELETE /v1/projects/{p}/replays/{r}, POST /v1/sweep\n", in.ShredURL)
	fmt.Fprintf(tw, "  PostgreSQL 15 (AlloyDB)\t%s\n", in.DatabaseURL)
	fmt.Fprintf(tw, "  fake-gcs-server\thttp://%s\tbucket %s\n", in.StorageEmulatorHost, in.Bucket)
	fmt.Fprintf(tw, "  KMS (gRPC)\t%s\t%s\n", in.KMSEndpoint, in.KMSKey)
	fmt.Fprintf(tw, "  Pub/Sub emulator\t%s\ttopics %s, %s\n", in.PubSubEmulatorHost, devSegmentTopic, devRejectTopic)
	fmt.Fprintf(tw, "  logs\t%s/{pack,serve,shred}.log\n", in.LogDir)
	fmt.Fprintf(tw, "  state\t%s\n", state)
	tw.Flush()
	if s.opts.NodeModules == "" {
		fmt.Fprintln(out, "\n  ! rrweb is not installed, so the recorder and viewer pages cannot load it: run `npm ci` in the repository root and restart")
	}
	fmt.Fprintf(out, "\nToken for project %d (replay:read replay:delete, valid %dh; paste the line into a shell):\n  TOKEN=%s\n", devProject, int(devTokenTTL.Hours()), in.Token)
	fmt.Fprintf(out, "\nOpen in a browser:\n  recorder  %s\n  viewer    %s\n", in.RecorderURL, in.ViewerURL)
	fmt.Fprintf(out, "\nPublish a generated session through the emulator:\n  PUBSUB_EMULATOR_HOST=%s go run ./cmd/replayvault-dev publish -project %d -generate 20\n", in.PubSubEmulatorHost, devProject)
	fmt.Fprintf(out, "\nRead it back:\n  curl -H \"Authorization: Bearer $TOKEN\" %s/v1/projects/%d/replays/REPLAY_ID/recording\n", in.ServeURL, devProject)
	fmt.Fprintln(out, "\nPress Ctrl-C to stop everything.")
}

// logTails returns the end of each function's log, for failure reports.
func (s *stack) logTails(lines int) string {
	var b strings.Builder
	for _, name := range []string{"Pack", "Serve", "Shred"} {
		f := s.funcs[name]
		if f == nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s (%s):\n%s\n", name, f.logPath, tail(f.logPath, lines))
	}
	return b.String()
}

// prefixWriter writes each line with a prefix; a partial line waits for its
// end.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i]); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// tail returns the last lines of a file.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// may take it before the child binds it; startFunction retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomToken returns 32 random bytes as hex.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
