package store

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// Stats counts the database work of one pool: statements sent (each a round
// trip, including BEGIN and COMMIT) and transactions committed. It is a
// pgx.QueryTracer; benchmarks install it with WithTracer. Production pools
// do not carry it.
type Stats struct {
	Statements   atomic.Int64
	Transactions atomic.Int64
}

// TraceQueryStart counts a statement, and a COMMIT as a transaction.
func (s *Stats) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.Statements.Add(1)
	if strings.EqualFold(strings.TrimSpace(d.SQL), "commit") {
		s.Transactions.Add(1)
	}
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (s *Stats) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
