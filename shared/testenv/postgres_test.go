package testenv

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestNewDB(t *testing.T) {
	ctx := t.Context()
	dsnA, dsnB := NewDB(t), NewDB(t)
	if dsnA == dsnB {
		t.Fatalf("NewDB returned the same database twice: %s", dsnA)
	}
	a, b := connect(t, dsnA), connect(t, dsnB)

	for name, conn := range map[string]*pgx.Conn{"a": a, "b": b} {
		var segments *string
		if err := conn.QueryRow(ctx, "SELECT to_regclass('public.segments')::text").Scan(&segments); err != nil {
			t.Fatalf("db %s: %v", name, err)
		}
		if segments == nil {
			t.Errorf("db %s: table segments missing; the template was not migrated", name)
		}
	}

	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	var found *string
	if err := b.QueryRow(ctx, "SELECT to_regclass('public.only_in_a')::text").Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found != nil {
		t.Error("a table created in one NewDB database is visible in another")
	}
}

func TestNewDBDroppedOnCleanup(t *testing.T) {
	var dsn string
	t.Run("use", func(t *testing.T) { dsn = NewDB(t) })
	name := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	conn := connect(t, process.pg.DSN("postgres"))
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// TestStartPostgresReusesDir is the dev stack's --data-dir: a second start on
// the same directory keeps the data.
func TestStartPostgresReusesDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Under /tmp, not t.TempDir: the server's user must be able to enter it.
	dir, err := os.MkdirTemp("", "testenv-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	pg, err := StartPostgres(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.CreateDatabase(ctx, "kept", ""); err != nil {
		pg.Stop()
		t.Fatal(err)
	}
	firstDSN := pg.DSN("kept")
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/PG_VERSION"); err != nil {
		t.Fatalf("Stop removed a directory it did not create: %v", err)
	}

	pg, err = StartPostgres(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	conn := connect(t, pg.DSN("kept"))
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("database created before the restart (%s): %v", firstDSN, err)
	}
	if _, err := os.Stat(dir + "/" + pgLogName); err != nil {
		t.Errorf("no server log: %v", err)
	}
}

// TestPostgresRestart: after a crash-like (immediate) and a fast restart
// the same DSN reaches the server again, and a commit made with
// synchronous_commit on survives the crash.
func TestPostgresRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	if err := pg.CreateDatabase(ctx, "kept", ""); err != nil {
		t.Fatal(err)
	}
	dsn := pg.DSN("kept")
	for i, immediate := range []bool{true, false} {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := conn.Exec(ctx, "ALTER DATABASE kept SET synchronous_commit = on; CREATE TABLE t (x int)"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.Exec(ctx, "SET synchronous_commit = on; INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		if err := pg.Restart(ctx, immediate); err != nil {
			t.Fatalf("Restart(immediate=%v): %v", immediate, err)
		}
		if err := conn.Ping(ctx); err == nil {
			t.Errorf("Restart(immediate=%v): a session from before still answers", immediate)
		}
		conn.Close(ctx)
		after := connect(t, dsn)
		var n int
		if err := after.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("after Restart(immediate=%v): %v", immediate, err)
		}
		if n != i+1 {
			t.Errorf("after Restart(immediate=%v): %d rows, want %d", immediate, n, i+1)
		}
	}
}

func TestStartPostgresUnreachableDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the cluster to another user")
	}
	// t.TempDir's parent is 0700 and root's: the server's user cannot enter.
	_, err := StartPostgres(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Fatalf("StartPostgres(unreachable dir) = %v, want an error saying the user cannot enter it", err)
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
