package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/replayvault/replayvault/shared/store"
)

const (
	// pgSuperuser is the bootstrap superuser initdb creates, whatever the OS
	// user running the server.
	pgSuperuser = "postgres"
	// templateDB is migrated once per test process and cloned by NewDB.
	templateDB = "rv_template"
	// pgDefaultBin is where Debian's postgresql-15 package puts its binaries.
	pgDefaultBin  = "/usr/lib/postgresql/15/bin"
	pgInstallHint = "install PostgreSQL 15 with `apt-get install -y postgresql-15` (or run scripts/test, which installs it), or point PG_BIN at its bin directory"
	// pgLogName is the server log inside the data directory.
	pgLogName = "postgres.log"
	// pgStartTimeout bounds one server start once initdb is done.
	pgStartTimeout = 30 * time.Second
)

// Postgres is a PostgreSQL server running as a child process on a
// throwaway (or reused) cluster, listening only on 127.0.0.1.
type Postgres struct {
	dir     string // the data directory
	ownsDir bool   // dir is a temp dir that Stop removes
	port    int
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the server process has exited
	waitErr error         // the process's exit status, set before exited closes
}

// StartPostgres starts a PostgreSQL server on the cluster in dir, creating
// the cluster with initdb unless dir already holds one (PG_VERSION exists).
// With dir == "" the cluster lives in a new temp dir that Stop removes. ctx
// bounds the start only; the server runs until Stop.
//
// When run as root the server runs as the "postgres" user (else "nobody"),
// since PostgreSQL refuses to run as root; that user must be able to reach
// dir. Durability is traded for speed (fsync and friends are off), so the
// cluster suits tests and local development only.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	start := time.Now()
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := pgCredential()
	if err != nil {
		return nil, err
	}

	pg := &Postgres{dir: dir}
	if dir == "" {
		if pg.dir, err = os.MkdirTemp("", "rv-postgres-"); err != nil {
			return nil, fmt.Errorf("postgres temp dir: %w", err)
		}
		pg.ownsDir = true
	} else if pg.dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("postgres dir %s: %w", dir, err)
	}
	if err := pg.start(ctx, bin, cred); err != nil {
		if pg.ownsDir {
			os.RemoveAll(pg.dir)
		}
		return nil, err
	}
	slog.Info("postgres started", "dir", pg.dir, "port", pg.port, "took", time.Since(start).Round(time.Millisecond))
	return pg, nil
}

func (pg *Postgres) start(ctx context.Context, bin string, cred *syscall.Credential) error {
	if err := os.MkdirAll(pg.dir, 0o700); err != nil {
		return fmt.Errorf("postgres dir: %w", err)
	}
	if cred != nil {
		if err := pgPrepareDir(pg.dir, cred); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(pg.dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := pgInitdb(ctx, bin, pg.dir, cred); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("postgres dir: %w", err)
	}

	// The port is picked before the server binds it, so another process can
	// win the race; try a few ports before giving up.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = pg.run(ctx, bin, cred); err == nil || !errAddrInUse(err.Error()) {
			return err
		}
	}
	return err
}

// run starts the server on a free port and waits until it accepts
// connections.
func (pg *Postgres) run(ctx context.Context, bin string, cred *syscall.Credential) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	return pg.runOn(ctx, bin, cred, port)
}

// runOn starts the server on port and waits until it accepts connections.
func (pg *Postgres) runOn(ctx context.Context, bin string, cred *syscall.Credential, port int) error {
	logPath := filepath.Join(pg.dir, pgLogName)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("postgres log: %w", err)
	}
	defer logFile.Close() // the child holds its own copy of the descriptor

	args := []string{
		"-D", pg.dir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + pgSocketDir(pg.dir),
		"-c", "max_connections=200",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = pg.dir
	cmd.Env = pgEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// SIGQUIT (immediate shutdown) if we die without calling Stop, so a
	// killed test binary does not leave a server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	pg.cmd, pg.port, pg.exited = cmd, port, make(chan struct{})
	go func() {
		pg.waitErr = cmd.Wait()
		close(pg.exited)
	}()

	ctx, cancel := context.WithTimeout(ctx, pgStartTimeout)
	defer cancel()
	for {
		if err := pg.ping(ctx); err == nil {
			return nil
		}
		select {
		case <-pg.exited:
			return fmt.Errorf("postgres exited during start (%v); log %s:\n%s", pg.waitErr, logPath, TailFile(logPath, 20))
		case <-ctx.Done():
			pg.kill()
			return fmt.Errorf("postgres did not accept connections: %w; log %s:\n%s", ctx.Err(), logPath, TailFile(logPath, 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (pg *Postgres) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// DSN returns a URL for database dbname as the superuser (no password: the
// cluster trusts local connections).
func (pg *Postgres) DSN(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(pgSuperuser),
		Host:     fmt.Sprintf("127.0.0.1:%d", pg.port),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Dir returns the cluster's data directory.
func (pg *Postgres) Dir() string { return pg.dir }

// CreateDatabase creates database name, copied from template unless template
// is empty.
func (pg *Postgres) CreateDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	// Copying a template fails while anything is still connected to it; a
	// pool closed a moment ago may still have backends on their way out.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := pg.exec(ctx, sql)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("create database %s: %w", name, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create database %s: %w", name, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DropDatabase drops database name if it exists, disconnecting its sessions.
func (pg *Postgres) DropDatabase(ctx context.Context, name string) error {
	if err := pg.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// exec runs one statement in the maintenance database.
func (pg *Postgres) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop shuts the server down (fast shutdown: sessions are disconnected) and
// removes the data directory if StartPostgres created it.
func (pg *Postgres) Stop() error {
	var err error
	if pg.cmd != nil {
		select {
		case <-pg.exited:
		default:
			if sigErr := pg.cmd.Process.Signal(syscall.SIGINT); sigErr != nil && !errors.Is(sigErr, os.ErrProcessDone) {
				err = fmt.Errorf("stop postgres: %w", sigErr)
			}
			select {
			case <-pg.exited:
			case <-time.After(30 * time.Second):
				pg.kill()
				err = errors.New("stop postgres: fast shutdown timed out; killed")
			}
		}
	}
	if pg.ownsDir {
		if rmErr := os.RemoveAll(pg.dir); rmErr != nil && err == nil {
			err = fmt.Errorf("remove postgres dir: %w", rmErr)
		}
	}
	return err
}

// Restart stops the server and starts it again on the same port, so open
// DSNs stay valid (their sessions are cut). immediate stops it as a crash
// would (SIGQUIT: no checkpoint, crash recovery on start); otherwise with a
// fast shutdown. The cluster runs with fsync off, which a crash of the
// server alone (not of the machine) does not lose data to; a database that
// must keep every acknowledged commit through it needs synchronous_commit
// on (ALTER DATABASE ... SET synchronous_commit = on).
func (pg *Postgres) Restart(ctx context.Context, immediate bool) error {
	bin, err := pgBinDir()
	if err != nil {
		return err
	}
	cred, err := pgCredential()
	if err != nil {
		return err
	}
	sig := syscall.SIGINT
	if immediate {
		sig = syscall.SIGQUIT
	}
	select {
	case <-pg.exited:
	default:
		if err := pg.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("restart postgres: %w", err)
		}
		select {
		case <-pg.exited:
		case <-time.After(30 * time.Second):
			pg.kill()
		}
	}
	// The old postmaster's children may hold the port a moment longer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = pg.runOn(ctx, bin, cred, pg.port)
		if err == nil || !errAddrInUse(err.Error()) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	return nil
}

// kill ends the server at once and waits for it.
func (pg *Postgres) kill() {
	pg.cmd.Process.Kill()
	select {
	case <-pg.exited:
	case <-time.After(10 * time.Second):
	}
}

// NewDB returns the URL of a fresh database holding the migrated schema,
// dropped when t ends. All tests of a process share one cluster, started on
// first use; each database is a copy of a template migrated once.
func NewDB(t testing.TB) string {
	t.Helper()
	requireMain(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := processPostgres(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	name := "test_" + randomHex(8)
	if err := pg.CreateDatabase(ctx, name, templateDB); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pg.DropDatabase(ctx, name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return pg.DSN(name)
}

// processPostgres returns the process's shared cluster, starting it and
// building the template database if that has not succeeded yet.
func processPostgres(ctx context.Context) (*Postgres, error) {
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.pg == nil {
		pg, err := StartPostgres(ctx, "")
		if err != nil {
			return nil, err
		}
		process.pg = pg
	}
	if !process.template {
		start := time.Now()
		pg := process.pg
		// A previous attempt may have left a half-migrated template behind.
		if err := pg.DropDatabase(ctx, templateDB); err != nil {
			return nil, err
		}
		if err := pg.CreateDatabase(ctx, templateDB, ""); err != nil {
			return nil, err
		}
		if err := store.Migrate(ctx, pg.DSN(templateDB)); err != nil {
			return nil, fmt.Errorf("migrate %s: %w", templateDB, err)
		}
		process.template = true
		slog.Info("postgres template migrated", "db", templateDB, "took", time.Since(start).Round(time.Millisecond))
	}
	return process.pg, nil
}

// pgBinDir finds the PostgreSQL server binaries: $PG_BIN, Debian's
// postgresql-15 directory, then `pg_config --bindir`.
func pgBinDir() (string, error) {
	candidates := []string{os.Getenv("PG_BIN"), pgDefaultBin}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	for _, dir := range candidates {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("postgres binaries (initdb, postgres) not found in $PG_BIN, %s or `pg_config --bindir`: %s", pgDefaultBin, pgInstallHint)
}

// pgCredential returns the unprivileged user to run PostgreSQL as when we are
// root (it refuses to run as root), or nil to run as ourselves.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	for _, name := range []string{"postgres", "nobody"} {
		if found, err := user.Lookup(name); err == nil {
			u = found
			break
		}
	}
	if u == nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("create user postgres to run the server as: %w: %s", err, out)
		}
		if u, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("look up user postgres: %w", err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", u.Username, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// pgPrepareDir hands dir to the server's user and checks that the user can
// reach it: a root-only parent (say, a 0700 t.TempDir) makes initdb fail with
// a puzzling "permission denied".
func pgPrepareDir(dir string, cred *syscall.Credential) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("postgres dir parent: %w", err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		mode := st.Mode().Perm()
		ok := mode&0o001 != 0 ||
			(sys.Uid == cred.Uid && mode&0o100 != 0) ||
			(sys.Gid == cred.Gid && mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("postgres runs as uid %d, which cannot enter %s (mode %v): pick a directory it can reach (e.g. under /tmp) or chmod o+x %s", cred.Uid, p, mode, p)
		}
		if p == "/" || p == "." {
			break
		}
	}
	// Only a new or foreign directory needs the recursive chown; a reused
	// cluster already belongs to the user.
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("postgres dir: %w", err)
	}
	if st.Sys().(*syscall.Stat_t).Uid == cred.Uid {
		return nil
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown postgres dir: %w", err)
		}
		return nil
	})
}

// pgInitdb creates a new cluster in dir, which must be empty.
func pgInitdb(ctx context.Context, bin, dir string, cred *syscall.Credential) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", dir,
		"--username="+pgSuperuser,
		"--auth=trust",
		"--encoding=UTF8",
		"--no-locale",
		"--no-sync",
		"--no-instructions",
	)
	cmd.Dir = dir
	cmd.Env = pgEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", dir, err, out)
	}
	return nil
}

// pgSocketDir keeps the unix socket inside the data directory unless the
// path would exceed the kernel's 107-byte limit, in which case the server
// listens on TCP only.
func pgSocketDir(dataDir string) string {
	if len(dataDir)+len("/.s.PGSQL.65535") > 100 {
		return ""
	}
	return dataDir
}

// pgEnv is the environment of initdb and postgres: ours without PG*
// variables, which could point them at another cluster.
func pgEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}
