package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// List rows are seeded over listDays days from listStartMS, with these
// shapes (listSeedSQL makes them):
//   - every replay visited two pages: one of listPages, numbered i % 1000,
//     and an account page numbered i % 7;
//   - one in listErrorEvery saw an error, one of listErrors distinct ids;
//   - durations spread evenly over 0..59 minutes;
//   - one in 100 is a shredded replay's tombstone (never listed).
const (
	listStartMS    = int64(1_700_000_000_000)
	listDays       = 30
	listErrors     = 500
	listErrorEvery = 50
)

// listSeedSQL inserts replay rows $2..$3 of project $1 (of $8 in all,
// spread over $7 ms from $4), each row's columns a function of its number
// i. compacted_seen = last_seen keeps the rows out of the compaction
// pass's way.
const listSeedSQL = `
INSERT INTO replays (project_id, replay_id, retention_days, first_seen, last_seen, compacted_seen,
	segment_count, stored_bytes, raw_bytes, started_at_ms, ended_at_ms, urls, error_ids, deleted_at)
SELECT $1, gen_random_uuid(), 90, t, t, t,
	1 + d / 5000, (1 + d / 5000) * 30000, (1 + d / 5000) * 90000, s, s + d,
	ARRAY['https://shop.example.test/' || (ARRAY['home', 'search', 'product', 'cart', 'checkout'])[(1 + i % 5)::int] || '/' || (i % 1000),
		'https://shop.example.test/account/' || (i % 7)],
	CASE WHEN i % $5 = 0 THEN ARRAY['err-' || ((i / $5) % $6)] END,
	CASE WHEN i % 100 = 1 THEN t END
FROM (SELECT i, $4::bigint + i * ($7::bigint / $8::bigint) AS s, (i * 7919 % 3600) * 1000 AS d,
		to_timestamp(($4::bigint + i * ($7::bigint / $8::bigint)) / 1000.0) AS t
	FROM generate_series($2::bigint, $3::bigint) AS i) AS g`

// seedListRows inserts n replay rows into project in bulk (generate_series,
// in chunks so that progress shows) and analyzes the table.
func seedListRows(ctx context.Context, dsn string, project int64, n int, progress func(string, ...any)) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	const chunk = 250_000
	span := int64(listDays) * 24 * 3600 * 1000
	for lo := 1; lo <= n; lo += chunk {
		hi := min(lo+chunk-1, n)
		if _, err := conn.Exec(ctx, listSeedSQL, project, lo, hi, listStartMS, listErrorEvery, listErrors, span, n); err != nil {
			return fmt.Errorf("seed replay rows %d..%d: %w", lo, hi, err)
		}
		if progress != nil {
			progress("list: %d of %d replay rows", hi, n)
		}
	}
	if _, err := conn.Exec(ctx, `ANALYZE replays`); err != nil {
		return fmt.Errorf("analyze replays: %w", err)
	}
	return nil
}

// ListQuery is one kind of list request of the mix.
type ListQuery struct {
	Kind string `json:"kind"`
	// P50MS and P99MS are over every page of this kind.
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	Pages int     `json:"pages"`
	// Replays is how many replays the pages returned in all.
	Replays int `json:"replays"`
}

// ListResult is the list endpoint's latency on a project of Rows replays.
type ListResult struct {
	Rows  int     `json:"rows"`
	SeedS float64 `json:"seed_s"`
	// Sessions of each kind: a first page and up to PagesPerSession-1
	// more by cursor.
	Sessions        int         `json:"sessions_per_kind"`
	PagesPerSession int         `json:"pages_per_session"`
	Limit           int         `json:"limit"`
	P50MS           float64     `json:"p50_ms"`
	P99MS           float64     `json:"p99_ms"`
	Pages           int         `json:"pages"`
	Kinds           []ListQuery `json:"kinds"`
}

// listKinds are the request kinds of the mix; each returns the query of
// one session's first page.
var listKinds = []struct {
	name  string
	query func(rng *rand.Rand) url.Values
}{
	{"newest first, no filter", func(*rand.Rand) url.Values { return url.Values{} }},
	{"time range (one day)", func(rng *rand.Rand) url.Values {
		from := listStartMS + int64(rng.IntN(listDays-1))*24*3600*1000
		return url.Values{"from_ts": {strconv.FormatInt(from, 10)}, "to_ts": {strconv.FormatInt(from+24*3600*1000, 10)}}
	}},
	{"url substring", func(rng *rand.Rand) url.Values {
		// Common (a fifth of the replays), rare (about 1 in 450) and in
		// between.
		subs := []string{"/checkout/", "/product/42", "account/3", "cart/9"}
		return url.Values{"url": {subs[rng.IntN(len(subs))]}}
	}},
	{"error id", func(rng *rand.Rand) url.Values {
		// About 1 replay in listErrorEvery·listErrors: the scan budget
		// bounds each page.
		return url.Values{"error_id": {"err-" + strconv.Itoa(rng.IntN(listErrors))}}
	}},
	{"min duration (45 min)", func(*rand.Rand) url.Values {
		return url.Values{"min_duration_ms": {strconv.Itoa(45 * 60 * 1000)}}
	}},
}

// measureList runs sessions of each list kind against Serve (base, with a
// token for project) and returns the pages' latency.
func measureList(ctx context.Context, hc *http.Client, base, token string, project int64, sessions, pages int, seed uint64) (ListResult, error) {
	const limit = 50
	res := ListResult{Sessions: sessions, PagesPerSession: pages, Limit: limit}
	rng := rand.New(rand.NewPCG(seed, 0x115))
	var all []time.Duration
	lats := make([][]time.Duration, len(listKinds))
	replays := make([]int, len(listKinds))
	// One unmeasured session of each kind warms the caches; then the
	// kinds interleave so that none profits from a warmer cache.
	for s := range sessions + 1 {
		for k, kind := range listKinds {
			q := kind.query(rng)
			q.Set("limit", strconv.Itoa(limit))
			for range pages {
				d, n, next, err := listPage(ctx, hc, fmt.Sprintf("%s/v1/projects/%d/replays?%s", base, project, q.Encode()), token)
				if err != nil {
					return res, fmt.Errorf("list %s: %w", kind.name, err)
				}
				if s > 0 {
					lats[k] = append(lats[k], d)
					all = append(all, d)
					replays[k] += n
				}
				if next == "" {
					break
				}
				q.Set("cursor", next)
			}
		}
	}
	for k, kind := range listKinds {
		p50, p99 := percentiles(lats[k])
		res.Kinds = append(res.Kinds, ListQuery{Kind: kind.name, P50MS: p50, P99MS: p99, Pages: len(lats[k]), Replays: replays[k]})
	}
	res.P50MS, res.P99MS = percentiles(all)
	res.Pages = len(all)
	return res, nil
}

// percentiles returns the 50th and 99th percentiles of ds in ms.
func percentiles(ds []time.Duration) (p50, p99 float64) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return ms(quantile(s, 0.5)), ms(quantile(s, 0.99))
}

// listPage gets one list page and returns its latency, how many replays it
// held and its next cursor ("" at the end).
func listPage(ctx context.Context, hc *http.Client, u, token string) (time.Duration, int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	d := time.Since(start)
	if err != nil {
		return 0, 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, "", fmt.Errorf("%s: %.200s", resp.Status, body)
	}
	var page struct {
		Replays    []json.RawMessage `json:"replays"`
		NextCursor *string           `json:"next_cursor"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return 0, 0, "", fmt.Errorf("list page: %w", err)
	}
	next := ""
	if page.NextCursor != nil {
		next = *page.NextCursor
	}
	return d, len(page.Replays), next, nil
}
