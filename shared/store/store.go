// Package store is replayvault's access to AlloyDB (PostgreSQL): the pool, the
// transaction helper, the embedded migrations and the hand-written SQL of each
// function's queries.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"cloud.google.com/go/alloydbconn"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/derrors"
)

// ErrUnavailable marks a database failure worth retrying later: the caller
// should answer 503 (or nack) rather than 500.
var ErrUnavailable = fmt.Errorf("database %w", derrors.Unavailable)

// DB is a pool of connections plus the per-call timeout.
type DB struct {
	Pool    *pgxpool.Pool
	timeout time.Duration
	closers []func() error
}

// Option configures a pool at Open.
type Option func(*pgxpool.Config)

// WithTracer traces every statement of the pool's connections with t
// (benchmarks count round trips with a Stats; telemetry records spans).
func WithTracer(t pgx.QueryTracer) Option {
	return func(c *pgxpool.Config) { c.ConnConfig.Tracer = t }
}

// Open connects with cfg: DATABASE_URL if set, otherwise AlloyDB through the
// connector with IAM authentication.
func Open(ctx context.Context, cfg config.DB, opts ...Option) (*DB, error) {
	return open(ctx, cfg, "", opts...)
}

// open is Open, optionally to another database of the same server.
func open(ctx context.Context, cfg config.DB, dbname string, opts ...Option) (*DB, error) {
	db := &DB{timeout: cfg.DBTimeout}
	var pcfg *pgxpool.Config
	var err error
	if cfg.DatabaseURL != "" {
		pcfg, err = pgxpool.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
		}
	} else {
		dialer, err := alloydbconn.NewDialer(ctx, alloydbconn.WithIAMAuthN())
		if err != nil {
			return nil, fmt.Errorf("alloydb dialer: %w", err)
		}
		db.closers = append(db.closers, dialer.Close)
		// The connector handles TLS and the IAM token; the password is unused.
		pcfg, err = pgxpool.ParseConfig(fmt.Sprintf("user=%s dbname=%s sslmode=disable", cfg.DBUser, cfg.DBName))
		if err != nil {
			dialer.Close()
			return nil, fmt.Errorf("alloydb pool config: %w", err)
		}
		instance := cfg.AlloyDBInstance
		pcfg.ConnConfig.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.Dial(ctx, instance)
		}
	}
	if dbname != "" {
		pcfg.ConnConfig.Database = dbname
	}
	pcfg.MaxConns = cfg.DBMaxConns
	pcfg.ConnConfig.ConnectTimeout = cfg.DBTimeout
	for _, o := range opts {
		o(pcfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open pool: %w", err)
	}
	db.Pool = pool
	pctx, cancel := context.WithTimeout(ctx, cfg.DBTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("ping database: %w: %w", ErrUnavailable, err)
	}
	return db, nil
}

// EnsureDatabase creates the database cfg names if it does not exist (a new
// AlloyDB cluster has only "postgres"), connecting to "postgres" to do so.
// It reports whether it created it.
func EnsureDatabase(ctx context.Context, cfg config.DB) (bool, error) {
	name := cfg.DBName
	if cfg.DatabaseURL != "" {
		pc, err := pgx.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			return false, fmt.Errorf("parse DATABASE_URL: %w", err)
		}
		name = pc.Database
	}
	if name == "" || name == "postgres" {
		return false, nil
	}
	admin, err := open(ctx, cfg, "postgres")
	if err != nil {
		return false, err
	}
	defer admin.Close()
	ctx, cancel := admin.WithTimeout(ctx)
	defer cancel()
	var exists bool
	if err := admin.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, classify(err))
	}
	if exists {
		return false, nil
	}
	if _, err := admin.Pool.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return false, fmt.Errorf("create database %s: %w", name, classify(err))
	}
	return true, nil
}

// OpenURL is Open for a plain PostgreSQL URL with default pool settings (tests,
// the dev stack and the CLI).
func OpenURL(ctx context.Context, url string, opts ...Option) (*DB, error) {
	return Open(ctx, config.DB{DatabaseURL: url, DBMaxConns: 16, DBTimeout: 30 * time.Second}, opts...)
}

// Close releases the pool and the connector.
func (db *DB) Close() {
	if db.Pool != nil {
		db.Pool.Close()
	}
	for _, c := range db.closers {
		_ = c()
	}
}

// InTx runs fn in a transaction at the given isolation level. fn gets a
// context bounded by the configured timeout, for its statements. InTx retries it when PostgreSQL reports a serialization
// failure or a deadlock: fn must be safe to run again.
func (db *DB) InTx(ctx context.Context, iso pgx.TxIsoLevel, fn func(context.Context, pgx.Tx) error) error {
	const attempts = 5
	var err error
	for i := range attempts {
		err = db.inTxOnce(ctx, iso, fn)
		if !retryable(err) {
			break
		}
		// Back off a little, more each time, so two conflicting transactions
		// do not collide again at once.
		select {
		case <-time.After(time.Duration(i+1) * 10 * time.Millisecond):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
	}
	return classify(err)
}

func (db *DB) inTxOnce(ctx context.Context, iso pgx.TxIsoLevel, fn func(context.Context, pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: iso})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(ctx, tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// WithTimeout bounds a single query by the configured timeout.
func (db *DB) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, db.timeout)
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	return false
}

// classify is the one place that decides whether a database error is about
// reaching the database (the connection, its resources, the server going
// away, a timeout) rather than about the statement, and marks those
// ErrUnavailable, which callers answer with 503.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57", "40": // connection, resources, operator intervention, rollback
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var connErr *pgconn.ConnectError
	if connLost(err) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &connErr) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// connLost reports whether err says the connection broke: the server
// closed it or went away, possibly mid-statement.
func connLost(err error) bool {
	var netErr net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &netErr)
}
