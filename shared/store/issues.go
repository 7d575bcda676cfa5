package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/replayvault/replayvault/shared/derrors"
)

// Issue statuses.
const (
	IssueOpen     = "open"
	IssueResolved = "resolved"
	IssueIgnored  = "ignored"
)

// Occurrence is one detected issue occurrence in a segment, as Pack hands
// it to CommitBatch (on Segment.Occurrences). The project, replay and
// segment come from the segment.
type Occurrence struct {
	TS      int64 // ms since epoch, event time
	Kind    string
	EdgeFP  string // throttle key
	FinalFP string // group key
	Title   string // for a new group
	Details json.RawMessage
}

// IssueThrottle bounds what occurrences may cost: the rows one edge
// fingerprint may add per window of event time (past Rows, occurrences are
// only counted), and the groups a project may have (past MaxGroups, new
// fingerprints share one overflow group per kind).
type IssueThrottle struct {
	Rows      int64
	Window    time.Duration
	MaxGroups int64
}

// DefaultIssueThrottle is the throttle of a DB whose SetIssueThrottle was
// not called (a zero field takes its value here too).
var DefaultIssueThrottle = IssueThrottle{Rows: 100, Window: time.Hour, MaxGroups: 100_000}

// SetIssueThrottle sets the throttle CommitBatch applies. Call it before
// the DB is used.
func (db *DB) SetIssueThrottle(t IssueThrottle) { db.issueThrottle = t }

func (db *DB) throttle() IssueThrottle {
	t := db.issueThrottle
	if t.Rows <= 0 {
		t.Rows = DefaultIssueThrottle.Rows
	}
	if t.Window <= 0 {
		t.Window = DefaultIssueThrottle.Window
	}
	if t.MaxGroups <= 0 {
		t.MaxGroups = DefaultIssueThrottle.MaxGroups
	}
	return t
}

// ShortID is a group's short id: P{project}-{id in base 36}, e.g. P42-1A.
func ShortID(project, id int64) string {
	return fmt.Sprintf("P%d-%s", project, strings.ToUpper(strconv.FormatInt(id, 36)))
}

// ParseShortID parses a short id of project (case-insensitive), or a plain
// decimal group id.
func ParseShortID(project int64, s string) (int64, error) {
	bad := fmt.Errorf("%w: issue id %q is not an issue of project %d", derrors.InvalidArgument, s, project)
	if len(s) > 40 {
		return 0, bad
	}
	if id, err := strconv.ParseInt(s, 10, 64); err == nil && id > 0 {
		return id, nil
	}
	prefix, rest, ok := strings.Cut(strings.ToUpper(s), "-")
	if !ok || prefix != "P"+strconv.FormatInt(project, 10) {
		return 0, bad
	}
	id, err := strconv.ParseInt(rest, 36, 64)
	if err != nil || id <= 0 {
		return 0, bad
	}
	return id, nil
}

// occRow is an occurrence with the segment's identity, during a commit.
type occRow struct {
	Occurrence
	project int64
	replay  uuid.UUID
	segment int
	expires time.Time // the segment's
	group   int64
	keep    bool
}

// recordOccurrences records the occurrences of freshly inserted segments in
// the flush transaction: it finds or creates each final fingerprint's
// group, applies the edge throttle, inserts the rows it keeps and adds
// every occurrence to its group's and its (group, replay) counters. Only
// segments the transaction inserted bring occurrences, so a redelivered
// segment never counts twice.
func recordOccurrences(ctx context.Context, tx pgx.Tx, th IssueThrottle, occs []occRow) error {
	if len(occs) == 0 {
		return nil
	}
	if err := assignGroups(ctx, tx, th, occs); err != nil {
		return err
	}
	if err := applyThrottle(ctx, tx, th, occs); err != nil {
		return err
	}

	// Rows kept.
	var (
		kp, kg          []int64
		kr              []uuid.UUID
		ks              []int32
		kts             []int64
		kk, ke, kf, kdd []string
	)
	for _, o := range occs {
		if !o.keep {
			continue
		}
		kp, kg, kr, ks, kts = append(kp, o.project), append(kg, o.group), append(kr, o.replay), append(ks, int32(o.segment)), append(kts, o.TS)
		details := string(o.Details)
		if details == "" {
			details = "{}"
		}
		kk, ke, kf, kdd = append(kk, o.Kind), append(ke, o.EdgeFP), append(kf, o.FinalFP), append(kdd, details)
	}
	if len(kp) > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO issue_occurrences (project_id, group_id, replay_id, segment_id, ts, kind, edge_fp, final_fp, details)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::uuid[], $4::int[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::jsonb[])
			ON CONFLICT DO NOTHING`, kp, kg, kr, ks, kts, kk, ke, kf, kdd); err != nil {
			return fmt.Errorf("insert occurrences: %w", err)
		}
	}

	// Per (group, replay) counters, then per group, in key order.
	type grKey struct {
		project, group int64
		replay         uuid.UUID
	}
	type tally struct {
		seen, rows, first, last int64
		expires                 time.Time
	}
	per := map[grKey]*tally{}
	for _, o := range occs {
		k := grKey{o.project, o.group, o.replay}
		t := per[k]
		if t == nil {
			t = &tally{first: o.TS, last: o.TS}
			per[k] = t
		}
		if o.expires.After(t.expires) {
			t.expires = o.expires
		}
		t.seen++
		if o.keep {
			t.rows++
		}
		t.first, t.last = min(t.first, o.TS), max(t.last, o.TS)
	}
	keys := make([]grKey, 0, len(per))
	for k := range per {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b grKey) int {
		if c := cmpInt(a.project, b.project); c != 0 {
			return c
		}
		if c := cmpInt(a.group, b.group); c != 0 {
			return c
		}
		return slices.Compare(a.replay[:], b.replay[:])
	})
	var (
		rp, rg, rs, rr, rf, rl []int64
		rid                    []uuid.UUID
		rx                     []time.Time
	)
	for _, k := range keys {
		t := per[k]
		rp, rg, rid = append(rp, k.project), append(rg, k.group), append(rid, k.replay)
		rs, rr, rf, rl = append(rs, t.seen), append(rr, t.rows), append(rf, t.first), append(rl, t.last)
		rx = append(rx, t.expires)
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO issue_replays AS r (project_id, group_id, replay_id, times_seen, row_count, first_ts, last_ts, expires_at)
		SELECT p, g, id, s, n, f, l, x
		FROM unnest($1::bigint[], $2::bigint[], $3::uuid[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
			$8::timestamptz[]) WITH ORDINALITY AS t(p, g, id, s, n, f, l, x, ord)
		ORDER BY ord
		ON CONFLICT (project_id, group_id, replay_id) DO UPDATE SET
			times_seen = r.times_seen + excluded.times_seen,
			row_count = r.row_count + excluded.row_count,
			first_ts = least(r.first_ts, excluded.first_ts),
			last_ts = greatest(r.last_ts, excluded.last_ts),
			expires_at = greatest(r.expires_at, excluded.expires_at)
		RETURNING project_id, group_id, xmax = 0`, rp, rg, rid, rs, rr, rf, rl, rx)
	if err != nil {
		return fmt.Errorf("upsert issue replays: %w", err)
	}
	type gKey struct{ project, group int64 }
	newLinks := map[gKey]int64{}
	for rows.Next() {
		var k gKey
		var inserted bool
		if err := rows.Scan(&k.project, &k.group, &inserted); err != nil {
			rows.Close()
			return err
		}
		if inserted {
			newLinks[k]++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("upsert issue replays: %w", err)
	}
	gt := map[gKey]*tally{}
	var gkeys []gKey
	for _, k := range keys {
		t := per[k]
		g := gKey{k.project, k.group}
		a := gt[g]
		if a == nil {
			a = &tally{first: t.first, last: t.last}
			gt[g] = a
			gkeys = append(gkeys, g) // keys are sorted by (project, group)
		}
		a.seen += t.seen
		a.rows += t.rows
		a.first, a.last = min(a.first, t.first), max(a.last, t.last)
	}
	var gp, gg, gs, gr, gl, gf, gn []int64
	for _, g := range gkeys {
		a := gt[g]
		gp, gg, gs, gr, gf, gl, gn = append(gp, g.project), append(gg, g.group), append(gs, a.seen), append(gr, a.rows),
			append(gf, a.first), append(gl, a.last), append(gn, newLinks[g])
	}
	if _, err := tx.Exec(ctx, `
		UPDATE issue_groups AS g SET
			times_seen = g.times_seen + t.s,
			row_count = g.row_count + t.n,
			replay_count = g.replay_count + t.links,
			first_ts = least(coalesce(g.first_ts, t.f), t.f),
			last_ts = greatest(coalesce(g.last_ts, t.l), t.l)
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
			AS t(p, id, s, n, f, l, links)
		WHERE g.project_id = t.p AND g.id = t.id`, gp, gg, gs, gr, gf, gl, gn); err != nil {
		return fmt.Errorf("update issue groups: %w", err)
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// assignGroups sets each occurrence's group: the group of its final
// fingerprint, created if the project has none yet. New ids come from the
// project's counter row, locked for the rest of the transaction, so two
// flushes that meet a new fingerprint at once create it once.
func assignGroups(ctx context.Context, tx pgx.Tx, th IssueThrottle, occs []occRow) error {
	type fpKey struct {
		project int64
		fp      string
	}
	found := map[fpKey]int64{}
	first := map[fpKey]*occRow{}
	var fps []fpKey
	for i := range occs {
		k := fpKey{occs[i].project, occs[i].FinalFP}
		if _, ok := first[k]; !ok {
			first[k] = &occs[i]
			fps = append(fps, k)
		}
	}
	slices.SortFunc(fps, func(a, b fpKey) int {
		if c := cmpInt(a.project, b.project); c != 0 {
			return c
		}
		return strings.Compare(a.fp, b.fp)
	})
	lookup := func(keys []fpKey) error {
		ps, fs := make([]int64, len(keys)), make([]string, len(keys))
		for i, k := range keys {
			ps[i], fs[i] = k.project, k.fp
		}
		rows, err := tx.Query(ctx, `
			SELECT g.project_id, g.fingerprint, g.id FROM unnest($1::bigint[], $2::text[]) AS t(p, fp)
			JOIN issue_groups g ON g.project_id = t.p AND g.fingerprint = t.fp`, ps, fs)
		if err != nil {
			return fmt.Errorf("find issue groups: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var k fpKey
			var id int64
			if err := rows.Scan(&k.project, &k.fp, &id); err != nil {
				return err
			}
			found[k] = id
		}
		return rows.Err()
	}
	if err := lookup(fps); err != nil {
		return err
	}
	missing := map[int64][]fpKey{}
	var projects []int64
	for _, k := range fps {
		if _, ok := found[k]; !ok {
			if len(missing[k.project]) == 0 {
				projects = append(projects, k.project)
			}
			missing[k.project] = append(missing[k.project], k)
		}
	}
	for _, p := range projects { // sorted, as fps is
		last, err := lockIssueCounter(ctx, tx, p)
		if err != nil {
			return err
		}
		// Another flush may have created some while we waited for the lock;
		// and past the project's group cap, fingerprints go to an overflow
		// group per kind.
		keys := slices.Clone(missing[p])
		for _, k := range missing[p] {
			keys = append(keys, fpKey{p, overflowFingerprint(first[k].Kind)})
		}
		if err := lookup(keys); err != nil {
			return err
		}
		var ids []int64
		var kinds, fpsNew, titles []string
		create := func(k fpKey, kind, title string) int64 {
			last++
			ids, kinds, fpsNew, titles = append(ids, last), append(kinds, kind), append(fpsNew, k.fp), append(titles, title)
			found[k] = last
			return last
		}
		for _, k := range missing[p] {
			if _, ok := found[k]; ok {
				continue
			}
			o := first[k]
			if last < th.MaxGroups {
				create(k, o.Kind, o.Title)
				continue
			}
			ok := fpKey{p, overflowFingerprint(o.Kind)}
			id, exists := found[ok]
			if !exists {
				id = create(ok, o.Kind, "Other "+o.Kind+" issues (the project reached its group limit)")
			}
			found[k] = id
		}
		if len(ids) == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO issue_groups (project_id, id, kind, fingerprint, title)
			SELECT $1, id, k, fp, t FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) AS u(id, k, fp, t)`,
			p, ids, kinds, fpsNew, titles); err != nil {
			return fmt.Errorf("create issue groups: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE issue_projects SET last_id = $2 WHERE project_id = $1`, p, last); err != nil {
			return fmt.Errorf("advance issue counter: %w", err)
		}
	}
	for i := range occs {
		occs[i].group = found[fpKey{occs[i].project, occs[i].FinalFP}]
	}
	return nil
}

// overflowFingerprint is the fingerprint of a project's overflow group for
// kind, where new fingerprints go once the project has MaxGroups groups.
// Their occurrences keep their own final fingerprint, so a later merge or
// regrouping can still tell them apart.
func overflowFingerprint(kind string) string { return "overflow:" + kind }

// lockIssueCounter locks project's id counter row (creating it) and
// returns the last id handed out.
func lockIssueCounter(ctx context.Context, tx pgx.Tx, project int64) (int64, error) {
	var last int64
	err := tx.QueryRow(ctx, `
		INSERT INTO issue_projects AS p (project_id) VALUES ($1)
		ON CONFLICT (project_id) DO UPDATE SET last_id = p.last_id
		RETURNING last_id`, project).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("lock issue counter of project %d: %w", project, err)
	}
	return last, nil
}

// applyThrottle counts occurrences per (edge fingerprint, window) and marks
// which become rows: the first th.Rows of each window, in event-time order.
func applyThrottle(ctx context.Context, tx pgx.Tx, th IssueThrottle, occs []occRow) error {
	type wKey struct {
		project int64
		fp      string
		window  int64
	}
	win := th.Window.Milliseconds()
	byKey := map[wKey][]int{}
	var keys []wKey
	for i, o := range occs {
		k := wKey{o.project, o.EdgeFP, o.TS - o.TS%win}
		if len(byKey[k]) == 0 {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	slices.SortFunc(keys, func(a, b wKey) int {
		if c := cmpInt(a.project, b.project); c != 0 {
			return c
		}
		if c := strings.Compare(a.fp, b.fp); c != 0 {
			return c
		}
		return cmpInt(a.window, b.window)
	})
	ps, fs, ws, ns := make([]int64, len(keys)), make([]string, len(keys)), make([]int64, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		ps[i], fs[i], ws[i], ns[i] = k.project, k.fp, k.window, int64(len(byKey[k]))
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO issue_throttle AS t (project_id, edge_fp, window_start, seen)
		SELECT p, fp, w, n FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS u(p, fp, w, n, ord)
		ORDER BY ord
		ON CONFLICT (project_id, edge_fp, window_start) DO UPDATE SET seen = t.seen + excluded.seen
		RETURNING project_id, edge_fp, window_start, seen`, ps, fs, ws, ns)
	if err != nil {
		return fmt.Errorf("count issue throttle: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k wKey
		var seen int64
		if err := rows.Scan(&k.project, &k.fp, &k.window, &seen); err != nil {
			return err
		}
		idx := byKey[k]
		slices.SortStableFunc(idx, func(a, b int) int { return cmpInt(occs[a].TS, occs[b].TS) })
		before := seen - int64(len(idx))
		quota := max(0, th.Rows-before)
		for j, i := range idx {
			occs[i].keep = int64(j) < quota
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("count issue throttle: %w", err)
	}
	return nil
}

// Group is one issue group row as stored: a group of occurrences or a view
// over other groups. Its counters are its own (a view's are zero).
type Group struct {
	ProjectID   int64
	ID          int64
	ParentID    *int64
	IsView      bool
	Kind        string
	Fingerprint *string
	Title       string
	Status      string
	StatusAt    *time.Time
	TimesSeen   int64
	RowCount    int64
	ReplayCount int64
	FirstTS     *int64
	LastTS      *int64
	CreatedAt   time.Time
	Notes       []Note
}

// Note is a note on a group.
type Note struct {
	ID        int64
	Body      string
	Author    string
	CreatedAt time.Time
}

// Issue is a top-level group (or any group read exactly) with counts
// aggregated over every group it contains.
type Issue struct {
	Group
	TopID         int64 // the view it shows in; its own id when top-level
	TimesSeen     int64 // summed over the groups under it (itself for a group)
	ReplayCount   int64 // distinct replays linked
	FirstTS       *int64
	LastTS        *int64
	Leaves        int64       // leaf groups under it (1 for a group)
	RecentReplays []uuid.UUID // up to 3, most recent first
}

const groupCols = `g.project_id, g.id, g.parent_id, g.is_view, g.kind, g.fingerprint, g.title, g.status, g.status_at,
	g.times_seen, g.row_count, g.replay_count, g.first_ts, g.last_ts, g.created_at`

func scanGroup(row pgx.Row, g *Group, extra ...any) error {
	return row.Scan(append([]any{&g.ProjectID, &g.ID, &g.ParentID, &g.IsView, &g.Kind, &g.Fingerprint, &g.Title,
		&g.Status, &g.StatusAt, &g.TimesSeen, &g.RowCount, &g.ReplayCount, &g.FirstTS, &g.LastTS, &g.CreatedAt}, extra...)...)
}

// errNoIssue is the not-found error for a group id.
func errNoIssue(project, id int64) error {
	return fmt.Errorf("%w: issue %s", derrors.NotFound, ShortID(project, id))
}

// GroupState returns one group row exactly as stored, with its notes.
func (db *DB) GroupState(ctx context.Context, project, id int64) (Group, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	var g Group
	err := scanGroup(db.Pool.QueryRow(ctx, `SELECT `+groupCols+` FROM issue_groups g WHERE project_id = $1 AND id = $2`,
		project, id), &g)
	if errors.Is(err, pgx.ErrNoRows) {
		return Group{}, errNoIssue(project, id)
	}
	if err != nil {
		return Group{}, fmt.Errorf("read issue %s: %w", ShortID(project, id), classify(err))
	}
	rows, err := db.Pool.Query(ctx, `SELECT id, body, author, created_at FROM issue_notes
		WHERE project_id = $1 AND group_id = $2 ORDER BY id`, project, id)
	if err != nil {
		return Group{}, fmt.Errorf("read notes of %s: %w", ShortID(project, id), classify(err))
	}
	g.Notes, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Note])
	if err != nil {
		return Group{}, fmt.Errorf("read notes of %s: %w", ShortID(project, id), classify(err))
	}
	if len(g.Notes) == 0 {
		g.Notes = nil
	}
	return g, nil
}

// MaxIssuePage caps a page of ListIssues.
const MaxIssuePage = 100

// ListIssues returns a page of project's top-level issues (groups in no
// view, and views), newest first, with counts summed over their members.
// The next page starts below before (0: the first page).
func (db *DB) ListIssues(ctx context.Context, project, before int64, limit int) ([]Issue, error) {
	if limit <= 0 || limit > MaxIssuePage {
		limit = MaxIssuePage
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	rows, err := db.Pool.Query(ctx, `SELECT g.id FROM issue_groups g
		WHERE g.project_id = $1 AND g.parent_id IS NULL AND g.id < $2 ORDER BY g.id DESC LIMIT $3`, project, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list issues of project %d: %w", project, classify(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list issues of project %d: %w", project, classify(err))
	}
	return db.issues(ctx, project, ids)
}

// issues reads the groups ids of project with their aggregates, in the
// order of ids. Counts of a view are summed over the leaf groups under it
// (a walk over group rows, never over occurrences).
func (db *DB) issues(ctx context.Context, project int64, ids []int64) ([]Issue, error) {
	if len(ids) == 0 {
		return []Issue{}, nil
	}
	rows, err := db.Pool.Query(ctx, `
		WITH RECURSIVE tree (top, id, is_view) AS (
			SELECT g.id, g.id, g.is_view FROM issue_groups g WHERE g.project_id = $1 AND g.id = ANY($2::bigint[])
			UNION ALL
			SELECT t.top, g.id, g.is_view FROM tree t
			JOIN issue_groups g ON g.project_id = $1 AND g.parent_id = t.id
			WHERE t.is_view
		), agg AS (
			SELECT t.top, sum(g.times_seen)::bigint AS seen, min(g.first_ts) AS first_ts, max(g.last_ts) AS last_ts,
				count(*) FILTER (WHERE NOT g.is_view) AS members,
				CASE WHEN bool_or(t.top <> t.id) THEN NULL ELSE max(g.replay_count) END AS replays
			FROM tree t JOIN issue_groups g ON g.project_id = $1 AND g.id = t.id
			GROUP BY t.top
		)
		SELECT `+groupCols+`, a.seen, a.first_ts, a.last_ts, a.members,
			coalesce(a.replays, (SELECT count(DISTINCT r.replay_id) FROM tree t JOIN issue_replays r
				ON r.project_id = $1 AND r.group_id = t.id WHERE t.top = g.id)),
			ARRAY(SELECT r.replay_id FROM tree t
				CROSS JOIN LATERAL (SELECT r.replay_id, r.last_ts FROM issue_replays r
					WHERE r.project_id = $1 AND r.group_id = t.id ORDER BY r.last_ts DESC LIMIT 3) r
				WHERE t.top = g.id GROUP BY r.replay_id ORDER BY max(r.last_ts) DESC, r.replay_id LIMIT 3)
		FROM agg a JOIN issue_groups g ON g.project_id = $1 AND g.id = a.top`, project, ids)
	if err != nil {
		return nil, fmt.Errorf("read issues of project %d: %w", project, classify(err))
	}
	defer rows.Close()
	byID := map[int64]Issue{}
	for rows.Next() {
		var is Issue
		if err := scanGroup(rows, &is.Group, &is.TimesSeen, &is.FirstTS, &is.LastTS, &is.Leaves, &is.ReplayCount,
			&is.RecentReplays); err != nil {
			return nil, fmt.Errorf("read issues of project %d: %w", project, err)
		}
		is.TopID = is.ID
		byID[is.ID] = is
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read issues of project %d: %w", project, classify(err))
	}
	out := make([]Issue, 0, len(ids))
	for _, id := range ids {
		if is, ok := byID[id]; ok {
			out = append(out, is)
		}
	}
	return out, nil
}

// IssueOccurrence is one stored occurrence, as the API shows it.
type IssueOccurrence struct {
	GroupID   int64
	TopID     int64
	ReplayID  uuid.UUID
	SegmentID int
	TS        int64
	Kind      string
	EdgeFP    string
	FinalFP   string
	Details   json.RawMessage
}

// IssueDetail is one issue with its members, notes and latest occurrences.
type IssueDetail struct {
	Issue
	RequestedID int64   // the id asked for, which may be a member of Issue
	Members     []Issue // direct members of a view
	Notes       []Note
	Occurrences []IssueOccurrence
}

// MaxIssueOccurrences caps the occurrences IssueDetail returns.
const MaxIssueOccurrences = 100

// Issue returns group id of project. Unless exact, a group merged into a
// view resolves to its top-level view (short ids of members redirect).
func (db *DB) Issue(ctx context.Context, project, id int64, exact bool) (IssueDetail, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	top := id
	if !exact {
		var err error
		if top, err = topOf(ctx, db.Pool, project, id); err != nil {
			return IssueDetail{}, err
		}
	}
	list, err := db.issues(ctx, project, []int64{top})
	if err != nil {
		return IssueDetail{}, err
	}
	if len(list) == 0 {
		return IssueDetail{}, errNoIssue(project, id)
	}
	d := IssueDetail{Issue: list[0], RequestedID: id}
	if d.IsView {
		rows, err := db.Pool.Query(ctx, `SELECT id FROM issue_groups WHERE project_id = $1 AND parent_id = $2 ORDER BY id`, project, top)
		if err != nil {
			return IssueDetail{}, fmt.Errorf("read members of %s: %w", ShortID(project, top), classify(err))
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return IssueDetail{}, fmt.Errorf("read members of %s: %w", ShortID(project, top), classify(err))
		}
		if d.Members, err = db.issues(ctx, project, ids); err != nil {
			return IssueDetail{}, err
		}
	}
	g, err := db.GroupState(ctx, project, top)
	if err != nil {
		return IssueDetail{}, err
	}
	d.Notes = g.Notes
	rows, err := db.Pool.Query(ctx, `
		WITH RECURSIVE tree (id) AS (
			SELECT $2::bigint
			UNION ALL
			SELECT g.id FROM tree t JOIN issue_groups g ON g.project_id = $1 AND g.parent_id = t.id
		)
		SELECT o.group_id, o.replay_id, o.segment_id, o.ts, o.kind, o.edge_fp, o.final_fp, o.details
		FROM tree t CROSS JOIN LATERAL (SELECT * FROM issue_occurrences o
			WHERE o.project_id = $1 AND o.group_id = t.id ORDER BY o.ts DESC LIMIT $3) o
		ORDER BY o.ts DESC, o.replay_id, o.segment_id LIMIT $3`, project, top, MaxIssueOccurrences)
	if err != nil {
		return IssueDetail{}, fmt.Errorf("read occurrences of %s: %w", ShortID(project, top), classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		o := IssueOccurrence{TopID: top}
		if err := rows.Scan(&o.GroupID, &o.ReplayID, &o.SegmentID, &o.TS, &o.Kind, &o.EdgeFP, &o.FinalFP, &o.Details); err != nil {
			return IssueDetail{}, fmt.Errorf("read occurrences of %s: %w", ShortID(project, top), err)
		}
		d.Occurrences = append(d.Occurrences, o)
	}
	if err := rows.Err(); err != nil {
		return IssueDetail{}, fmt.Errorf("read occurrences of %s: %w", ShortID(project, top), classify(err))
	}
	return d, nil
}

// ReplayIssues returns the stored occurrences in one replay (at most
// MaxIssueOccurrences, by time), each with the top-level issue it shows in.
func (db *DB) ReplayIssues(ctx context.Context, project int64, replay uuid.UUID) ([]IssueOccurrence, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	rows, err := db.Pool.Query(ctx, `
		WITH RECURSIVE up (leaf, id, parent) AS (
			SELECT g.id, g.id, g.parent_id FROM issue_groups g
			WHERE g.project_id = $1 AND g.id IN (SELECT group_id FROM issue_replays WHERE project_id = $1 AND replay_id = $2)
			UNION ALL
			SELECT u.leaf, g.id, g.parent_id FROM up u JOIN issue_groups g ON g.project_id = $1 AND g.id = u.parent
		)
		SELECT o.group_id, u.id, o.replay_id, o.segment_id, o.ts, o.kind, o.edge_fp, o.final_fp, o.details
		FROM issue_occurrences o JOIN up u ON u.leaf = o.group_id AND u.parent IS NULL
		WHERE o.project_id = $1 AND o.replay_id = $2
		ORDER BY o.ts, o.segment_id, o.kind LIMIT $3`, project, replay, MaxIssueOccurrences)
	if err != nil {
		return nil, fmt.Errorf("read issues of replay %s: %w", replay, classify(err))
	}
	defer rows.Close()
	out := []IssueOccurrence{}
	for rows.Next() {
		var o IssueOccurrence
		if err := rows.Scan(&o.GroupID, &o.TopID, &o.ReplayID, &o.SegmentID, &o.TS, &o.Kind, &o.EdgeFP, &o.FinalFP, &o.Details); err != nil {
			return nil, fmt.Errorf("read issues of replay %s: %w", replay, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read issues of replay %s: %w", replay, classify(err))
	}
	return out, nil
}

// topOf returns the top-level group that id shows in (id itself if it is
// in no view).
func topOf(ctx context.Context, q querier, project, id int64) (int64, error) {
	var top int64
	err := q.QueryRow(ctx, `
		WITH RECURSIVE up (id, parent, depth) AS (
			SELECT id, parent_id, 0 FROM issue_groups WHERE project_id = $1 AND id = $2
			UNION ALL
			SELECT g.id, g.parent_id, u.depth + 1 FROM up u JOIN issue_groups g ON g.project_id = $1 AND g.id = u.parent
		)
		SELECT id FROM up WHERE parent IS NULL`, project, id).Scan(&top)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errNoIssue(project, id)
	}
	if err != nil {
		return 0, fmt.Errorf("resolve issue %s: %w", ShortID(project, id), classify(err))
	}
	return top, nil
}

// MaxMergeMembers caps the groups one merge names.
const MaxMergeMembers = 100

// Merge creates a view over the top-level issues that ids show in (a
// member's id stands for its top view, so merging views makes a
// supergroup) and returns the view's id. It changes no member but its
// parent: the cost is one row per member, whatever their occurrences.
func (db *DB) Merge(ctx context.Context, project int64, ids []int64) (int64, error) {
	if len(ids) < 2 || len(ids) > MaxMergeMembers {
		return 0, fmt.Errorf("%w: a merge takes 2 to %d issues", derrors.InvalidArgument, MaxMergeMembers)
	}
	var view int64
	err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		// The counter row serializes merges (and group creation) of the
		// project, so two merges cannot both take the same group.
		last, err := lockIssueCounter(ctx, tx, project)
		if err != nil {
			return err
		}
		var tops []int64
		for _, id := range ids {
			top, err := topOf(ctx, tx, project, id)
			if err != nil {
				return err
			}
			tops = append(tops, top)
		}
		slices.Sort(tops)
		tops = slices.Compact(tops)
		if len(tops) < 2 {
			return fmt.Errorf("%w: the issues are already merged", derrors.InvalidArgument)
		}
		var kind, title string
		if err := tx.QueryRow(ctx, `
			SELECT CASE WHEN count(DISTINCT kind) = 1 THEN min(kind) ELSE 'mixed' END,
				(array_agg(title ORDER BY id))[1]
			FROM issue_groups WHERE project_id = $1 AND id = ANY($2)`, project, tops).Scan(&kind, &title); err != nil {
			return fmt.Errorf("read members: %w", err)
		}
		view = last + 1
		if _, err := tx.Exec(ctx, `INSERT INTO issue_groups (project_id, id, is_view, kind, title) VALUES ($1, $2, true, $3, $4)`,
			project, view, kind, title); err != nil {
			return fmt.Errorf("create view: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE issue_projects SET last_id = $2 WHERE project_id = $1`, project, view); err != nil {
			return fmt.Errorf("advance issue counter: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE issue_groups SET parent_id = $2 WHERE project_id = $1 AND id = ANY($3)`,
			project, view, tops); err != nil {
			return fmt.Errorf("attach members: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("merge issues of project %d: %w", project, err)
	}
	return view, nil
}

// Unmerge removes view id of project: its members go back to where the view
// was (top level, or the view's own view) with everything they had,
// untouched. The view's own notes go with it.
func (db *DB) Unmerge(ctx context.Context, project, id int64) error {
	err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := lockIssueCounter(ctx, tx, project); err != nil {
			return err
		}
		var isView bool
		var parent *int64
		err := tx.QueryRow(ctx, `SELECT is_view, parent_id FROM issue_groups WHERE project_id = $1 AND id = $2`,
			project, id).Scan(&isView, &parent)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoIssue(project, id)
		}
		if err != nil {
			return fmt.Errorf("read view: %w", err)
		}
		if !isView {
			return fmt.Errorf("%w: %s is not a merge", derrors.InvalidArgument, ShortID(project, id))
		}
		if _, err := tx.Exec(ctx, `UPDATE issue_groups SET parent_id = $3 WHERE project_id = $1 AND parent_id = $2`,
			project, id, parent); err != nil {
			return fmt.Errorf("detach members: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM issue_groups WHERE project_id = $1 AND id = $2`, project, id); err != nil {
			return fmt.Errorf("delete view: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unmerge %s: %w", ShortID(project, id), err)
	}
	return nil
}

// SetIssueStatus sets the status of exactly group id (a view's status is
// its own; its members keep theirs) and returns when it was set.
func (db *DB) SetIssueStatus(ctx context.Context, project, id int64, status string) (time.Time, error) {
	switch status {
	case IssueOpen, IssueResolved, IssueIgnored:
	default:
		return time.Time{}, fmt.Errorf("%w: status %q is not open, resolved or ignored", derrors.InvalidArgument, status)
	}
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	var at time.Time
	err := db.Pool.QueryRow(ctx, `UPDATE issue_groups SET status = $3, status_at = now()
		WHERE project_id = $1 AND id = $2 RETURNING status_at`, project, id, status).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, errNoIssue(project, id)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("set status of %s: %w", ShortID(project, id), classify(err))
	}
	return at, nil
}

// MaxNoteBytes caps a note.
const MaxNoteBytes = 4096

// AddIssueNote adds a note to exactly group id and returns it.
func (db *DB) AddIssueNote(ctx context.Context, project, id int64, body, author string) (Note, error) {
	if body == "" || len(body) > MaxNoteBytes {
		return Note{}, fmt.Errorf("%w: a note holds 1 to %d bytes", derrors.InvalidArgument, MaxNoteBytes)
	}
	var n Note
	err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		// The group's row lock numbers its notes.
		var ok bool
		err := tx.QueryRow(ctx, `SELECT true FROM issue_groups WHERE project_id = $1 AND id = $2 FOR UPDATE`,
			project, id).Scan(&ok)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoIssue(project, id)
		}
		if err != nil {
			return fmt.Errorf("lock issue: %w", err)
		}
		return tx.QueryRow(ctx, `
			INSERT INTO issue_notes (project_id, group_id, id, body, author)
			SELECT $1, $2, coalesce(max(id), 0) + 1, $3, $4 FROM issue_notes WHERE project_id = $1 AND group_id = $2
			RETURNING id, body, author, created_at`, project, id, body, author).Scan(&n.ID, &n.Body, &n.Author, &n.CreatedAt)
	})
	if err != nil {
		return Note{}, fmt.Errorf("add note to %s: %w", ShortID(project, id), err)
	}
	return n, nil
}

// unlinkReplayIssues takes shredded replays out of the issue tables in the
// shred's transaction: their occurrence rows and (group, replay) rows go,
// and each group's counters lose exactly what those replays brought. The
// groups themselves, with their status and notes, stay.
func unlinkReplayIssues(ctx context.Context, tx pgx.Tx, project int64, replays []uuid.UUID) error {
	if _, err := tx.Exec(ctx, `DELETE FROM issue_occurrences WHERE project_id = $1 AND replay_id = ANY($2::uuid[])`,
		project, replays); err != nil {
		return fmt.Errorf("delete issue occurrences: %w", err)
	}
	return unlinkIssueReplays(ctx, tx, `
		DELETE FROM issue_replays WHERE project_id = $1 AND replay_id = ANY($2::uuid[])
		RETURNING project_id, group_id, replay_id, times_seen, row_count`, project, replays)
}

// unlinkIssueReplays runs gone, a DELETE of issue_replays rows RETURNING
// project_id, group_id, replay_id, times_seen, row_count, and takes what
// those rows counted out of their groups' counters; first and last seen are
// recomputed from the replays left.
func unlinkIssueReplays(ctx context.Context, tx pgx.Tx, gone string, args ...any) error {
	rows, err := tx.Query(ctx, `
		WITH gone AS (`+gone+`
		), t AS (
			SELECT project_id, group_id, sum(times_seen) AS s, sum(row_count) AS n, count(*) AS links
			FROM gone GROUP BY project_id, group_id
		)
		UPDATE issue_groups AS g SET
			times_seen = g.times_seen - t.s,
			row_count = g.row_count - t.n,
			replay_count = g.replay_count - t.links
		FROM t WHERE g.project_id = t.project_id AND g.id = t.group_id
		RETURNING g.project_id, g.id`, args...)
	if err != nil {
		return fmt.Errorf("unlink issue replays: %w", err)
	}
	var ps, gs []int64
	var p, g int64
	if _, err := pgx.ForEachRow(rows, []any{&p, &g}, func() error {
		ps, gs = append(ps, p), append(gs, g)
		return nil
	}); err != nil {
		return fmt.Errorf("unlink issue replays: %w", err)
	}
	if len(gs) == 0 {
		return nil
	}
	// The statement above deleted in a CTE, which its own UPDATE could not
	// see yet; this one can.
	if _, err := tx.Exec(ctx, `
		UPDATE issue_groups AS g SET
			first_ts = (SELECT min(r.first_ts) FROM issue_replays r WHERE r.project_id = g.project_id AND r.group_id = g.id),
			last_ts = (SELECT max(r.last_ts) FROM issue_replays r WHERE r.project_id = g.project_id AND r.group_id = g.id)
		FROM unnest($1::bigint[], $2::bigint[]) AS t(p, id)
		WHERE g.project_id = t.p AND g.id = t.id`, ps, gs); err != nil {
		return fmt.Errorf("recompute issue times: %w", err)
	}
	return nil
}

// ExpireIssueReplays unlinks up to limit (group, replay) links whose
// replay's segments have all expired by now (the link keeps the latest
// expiry of the segments that brought it), as a shred does: their
// occurrence rows go and the groups' counters lose what they brought. It
// returns how many links it removed.
func (db *DB) ExpireIssueReplays(ctx context.Context, now time.Time, limit int) (int64, error) {
	var n int64
	err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT project_id, group_id, replay_id FROM issue_replays
			WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit)
		if err != nil {
			return fmt.Errorf("find expired issue links: %w", err)
		}
		var ps, gs []int64
		var rs []uuid.UUID
		var p, g int64
		var r uuid.UUID
		if _, err := pgx.ForEachRow(rows, []any{&p, &g, &r}, func() error {
			ps, gs, rs = append(ps, p), append(gs, g), append(rs, r)
			return nil
		}); err != nil {
			return fmt.Errorf("find expired issue links: %w", err)
		}
		n = int64(len(ps))
		if n == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `
			DELETE FROM issue_occurrences o USING unnest($1::bigint[], $2::bigint[], $3::uuid[]) AS t(p, g, r)
			WHERE o.project_id = t.p AND o.group_id = t.g AND o.replay_id = t.r`, ps, gs, rs); err != nil {
			return fmt.Errorf("delete expired occurrences: %w", err)
		}
		return unlinkIssueReplays(ctx, tx, `
			DELETE FROM issue_replays r USING unnest($1::bigint[], $2::bigint[], $3::uuid[]) AS t(p, g, id)
			WHERE r.project_id = t.p AND r.group_id = t.g AND r.replay_id = t.id
			RETURNING r.project_id, r.group_id, r.replay_id, r.times_seen, r.row_count`, ps, gs, rs)
	})
	if err != nil {
		return 0, fmt.Errorf("expire issue links: %w", err)
	}
	return n, nil
}

// deleteProjectIssues removes every issue row of a shredded project.
func deleteProjectIssues(ctx context.Context, tx pgx.Tx, project int64) error {
	for _, q := range []string{
		`DELETE FROM issue_occurrences WHERE project_id = $1`,
		`DELETE FROM issue_replays WHERE project_id = $1`,
		`DELETE FROM issue_throttle WHERE project_id = $1`,
		`DELETE FROM issue_notes WHERE project_id = $1`,
		`UPDATE issue_groups SET parent_id = NULL WHERE project_id = $1 AND parent_id IS NOT NULL`,
		`DELETE FROM issue_groups WHERE project_id = $1`,
	} {
		if _, err := tx.Exec(ctx, q, project); err != nil {
			return fmt.Errorf("delete issues of project %d: %w", project, err)
		}
	}
	return nil
}

// ExpireIssueThrottle deletes up to limit throttle windows that started
// before before (event time) and returns how many it deleted. A window
// that old takes no more occurrences in practice; if a late segment does
// bring one, the window starts counting again, which costs at most one
// more quota of rows.
func (db *DB) ExpireIssueThrottle(ctx context.Context, before time.Time, limit int) (int64, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	tag, err := db.Pool.Exec(ctx, `
		DELETE FROM issue_throttle AS t
		USING (SELECT project_id, edge_fp, window_start FROM issue_throttle
			WHERE window_start < $1 LIMIT $2 FOR UPDATE SKIP LOCKED) AS e
		WHERE t.project_id = e.project_id AND t.edge_fp = e.edge_fp AND t.window_start = e.window_start`,
		before.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("expire issue throttle: %w", classify(err))
	}
	return tag.RowsAffected(), nil
}
