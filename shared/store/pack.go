package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
)

// Blob is one packed object.
type Blob struct {
	Path          string
	RetentionDays int
	Size          int64
	SegmentCount  int
}

// Segment is one segment row: where the sealed bytes are, the wrapped DEK,
// and the event metadata taken during validation.
type Segment struct {
	ID              segment.ID
	BlobPath        string
	ByteStart       int64
	ByteStop        int64 // exclusive
	Encoding        segment.Encoding
	RawSize         int64
	EventCount      int
	FirstTS, LastTS int64
	HasFullSnapshot bool
	KEKID           uuid.UUID
	WrappedDEK      []byte
	RetentionDays   int
	CreatedAt       time.Time
	ExpiresAt       time.Time
	// Meta is what the SDK said about the replay (from Ingest); it is kept
	// on the replay row.
	Meta replaymeta.Meta
	// Occurrences are the issues detected in the segment; they are
	// recorded only if the segment row is inserted (never for a
	// redelivery), in the same transaction.
	Occurrences []Occurrence
}

// Outcome is what a batch commit did with one segment.
type Outcome int

const (
	// Stored means the row was inserted.
	Stored Outcome = iota
	// Duplicate means a row with the same identity existed (a redelivery).
	Duplicate
	// Shredded means the replay or project is tombstoned; nothing stored.
	Shredded
)

// CommitBatch records one flushed object: the blob row, the segment rows and
// the replay rows, in one transaction. It takes a share lock on each project
// row and an update lock on each replay row, the same rows a shred locks, so
// a segment can never be inserted for a replay whose shred has committed.
// outcomes[i] says what happened to segs[i].
func (db *DB) CommitBatch(ctx context.Context, blob Blob, segs []Segment) (outcomes []Outcome, err error) {
	err = db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		outcomes, err = commitBatch(ctx, tx, db.throttle(), blob, segs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commit blob %s: %w", blob.Path, err)
	}
	return outcomes, nil
}

type replayKey struct {
	project int64
	replay  uuid.UUID
}

func compareReplayKeys(a, b replayKey) int {
	if a.project != b.project {
		return int(a.project - b.project)
	}
	return slices.Compare(a.replay[:], b.replay[:])
}

// commitBatch runs CommitBatch's statements, taking locks in the order a
// shred takes them (projects, then replays, each in key order).
func commitBatch(ctx context.Context, tx pgx.Tx, th IssueThrottle, blob Blob, segs []Segment) ([]Outcome, error) {
	if _, err := tx.Exec(ctx,
		`INSERT INTO blobs (path, retention_days, size, segment_count) VALUES ($1, $2, $3, $4)`,
		blob.Path, blob.RetentionDays, blob.Size, blob.SegmentCount); err != nil {
		return nil, fmt.Errorf("insert blob: %w", err)
	}
	deadProjects, err := lockProjects(ctx, tx, segs)
	if err != nil {
		return nil, err
	}
	replays := newReplayTotals(segs)
	deadReplays, err := upsertReplays(ctx, tx, replays)
	if err != nil {
		return nil, err
	}

	// Segments: insert the live ones; a conflict is a redelivery.
	outcomes := make([]Outcome, len(segs))
	var live []int
	for i, s := range segs {
		k := replayKey{s.ID.ProjectID, s.ID.ReplayID}
		if deadProjects[k.project] || deadReplays[k] {
			outcomes[i] = Shredded
			continue
		}
		outcomes[i] = Duplicate // until the insert says otherwise
		live = append(live, i)
	}
	if len(live) == 0 {
		return outcomes, nil
	}
	inserted, err := insertSegments(ctx, tx, segs, live)
	if err != nil {
		return nil, err
	}
	for _, i := range inserted {
		outcomes[i] = Stored
		replays.add(segs[i])
	}
	if err := updateReplayCounters(ctx, tx, replays); err != nil {
		return nil, err
	}
	if err := updateReplayMeta(ctx, tx, segs, outcomes); err != nil {
		return nil, err
	}
	if err := recordOccurrences(ctx, tx, th, occurrencesOf(segs, inserted)); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// lockProjects makes sure every project of segs has a row, share-locks them
// in key order (a project shred takes the update lock) and returns which
// are tombstoned.
func lockProjects(ctx context.Context, tx pgx.Tx, segs []Segment) (map[int64]bool, error) {
	var projects []int64
	for _, s := range segs {
		projects = append(projects, s.ID.ProjectID)
	}
	slices.Sort(projects)
	projects = slices.Compact(projects)
	if _, err := tx.Exec(ctx,
		`INSERT INTO projects (project_id) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING`, projects); err != nil {
		return nil, fmt.Errorf("insert projects: %w", err)
	}
	rows, err := tx.Query(ctx,
		`SELECT project_id, deleted_at IS NOT NULL FROM projects
		WHERE project_id = ANY($1) ORDER BY project_id FOR SHARE`, projects)
	if err != nil {
		return nil, fmt.Errorf("lock projects: %w", err)
	}
	dead := map[int64]bool{}
	var p int64
	var gone bool
	if _, err := pgx.ForEachRow(rows, []any{&p, &gone}, func() error {
		dead[p] = gone
		return nil
	}); err != nil {
		return nil, fmt.Errorf("lock projects: %w", err)
	}
	return dead, nil
}

// replayTotals are what one batch adds to each of its replays, in key
// order (the order every statement locks them in).
type replayTotals struct {
	keys []replayKey
	by   map[replayKey]*replayTotal
}

type replayTotal struct {
	retention       int
	minTS, maxTS    int64
	stored, rawSize int64
	count, inserted int
}

func newReplayTotals(segs []Segment) *replayTotals {
	t := &replayTotals{by: map[replayKey]*replayTotal{}}
	for _, s := range segs {
		k := replayKey{s.ID.ProjectID, s.ID.ReplayID}
		a := t.by[k]
		if a == nil {
			a = &replayTotal{}
			t.by[k] = a
			t.keys = append(t.keys, k)
		}
		a.retention = max(a.retention, s.RetentionDays)
	}
	slices.SortFunc(t.keys, compareReplayKeys)
	return t
}

// add counts a stored segment.
func (t *replayTotals) add(s Segment) {
	a := t.by[replayKey{s.ID.ProjectID, s.ID.ReplayID}]
	a.inserted++
	if s.ID.Type == segment.DefaultType {
		a.count++ // segment_count counts the recording's segments, not its slices
	}
	a.stored += s.ByteStop - s.ByteStart
	a.rawSize += s.RawSize
	if s.FirstTS > 0 && (a.minTS == 0 || s.FirstTS < a.minTS) {
		a.minTS = s.FirstTS
	}
	a.maxTS = max(a.maxTS, s.LastTS)
}

// upsertReplays makes sure every replay has a row, locks them in key order
// and returns which are tombstoned.
func upsertReplays(ctx context.Context, tx pgx.Tx, t *replayTotals) (map[replayKey]bool, error) {
	n := len(t.keys)
	projects, ids, retention := make([]int64, n), make([]pgtype.UUID, n), make([]int32, n)
	for i, k := range t.keys {
		projects[i], ids[i], retention[i] = k.project, pgUUID(k.replay), int32(t.by[k].retention)
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO replays AS r (project_id, replay_id, retention_days, first_seen, last_seen)
		SELECT p, id, ret, now(), now()
		FROM unnest($1::bigint[], $2::uuid[], $3::int[]) WITH ORDINALITY AS t(p, id, ret, ord)
		ORDER BY ord
		ON CONFLICT (project_id, replay_id) DO UPDATE
		SET last_seen = now(), retention_days = greatest(r.retention_days, excluded.retention_days)
		RETURNING project_id, replay_id, deleted_at IS NOT NULL`, projects, ids, retention)
	if err != nil {
		return nil, fmt.Errorf("upsert replays: %w", err)
	}
	dead := map[replayKey]bool{}
	var k replayKey
	var gone bool
	if _, err := pgx.ForEachRow(rows, []any{&k.project, &k.replay, &gone}, func() error {
		if gone {
			dead[k] = true
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("upsert replays: %w", err)
	}
	return dead, nil
}

// updateReplayCounters adds the stored segments' counts, bytes and time
// span to their replays, in key order.
func updateReplayCounters(ctx context.Context, tx pgx.Tx, t *replayTotals) error {
	var (
		projects       []int64
		ids            []pgtype.UUID
		counts         []int32
		stored, raw    []int64
		minTSs, maxTSs []int64
	)
	for _, k := range t.keys {
		a := t.by[k]
		if a.inserted == 0 {
			continue
		}
		projects, ids, counts = append(projects, k.project), append(ids, pgUUID(k.replay)), append(counts, int32(a.count))
		stored, raw = append(stored, a.stored), append(raw, a.rawSize)
		minTSs, maxTSs = append(minTSs, a.minTS), append(maxTSs, a.maxTS)
	}
	if len(projects) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		UPDATE replays AS r SET
			segment_count = r.segment_count + t.n,
			stored_bytes = r.stored_bytes + t.stored,
			raw_bytes = r.raw_bytes + t.raw,
			started_at_ms = CASE WHEN t.min_ts = 0 THEN r.started_at_ms ELSE least(coalesce(r.started_at_ms, t.min_ts), t.min_ts) END,
			ended_at_ms = CASE WHEN t.max_ts = 0 THEN r.ended_at_ms ELSE greatest(coalesce(r.ended_at_ms, t.max_ts), t.max_ts) END
		FROM unnest($1::bigint[], $2::uuid[], $3::int[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
			AS t(p, id, n, stored, raw, min_ts, max_ts)
		WHERE r.project_id = t.p AND r.replay_id = t.id`,
		projects, ids, counts, stored, raw, minTSs, maxTSs); err != nil {
		return fmt.Errorf("update replays: %w", err)
	}
	return nil
}

// segmentColumns holds segment rows column by column: one array parameter
// per column lets a whole batch go in one statement (unnest).
type segmentColumns struct {
	ord                     []int32
	projects                []int64
	replays                 []pgtype.UUID
	types, paths, encodings []string
	segmentIDs, events      []int32
	starts, stops, raws     []int64
	firstTSs, lastTSs       []int64
	fullSnapshots           []bool
	keks                    []pgtype.UUID
	deks                    [][]byte
	createdAt, expiresAt    []time.Time
}

func (c *segmentColumns) add(ord int, s Segment) {
	c.ord = append(c.ord, int32(ord))
	c.projects, c.replays = append(c.projects, s.ID.ProjectID), append(c.replays, pgUUID(s.ID.ReplayID))
	c.types, c.segmentIDs = append(c.types, s.ID.Type), append(c.segmentIDs, int32(s.ID.SegmentID))
	c.paths, c.starts, c.stops = append(c.paths, s.BlobPath), append(c.starts, s.ByteStart), append(c.stops, s.ByteStop)
	c.encodings, c.raws, c.events = append(c.encodings, string(s.Encoding)), append(c.raws, s.RawSize), append(c.events, int32(s.EventCount))
	c.firstTSs, c.lastTSs = append(c.firstTSs, s.FirstTS), append(c.lastTSs, s.LastTS)
	c.fullSnapshots = append(c.fullSnapshots, s.HasFullSnapshot)
	c.keks, c.deks = append(c.keks, pgUUID(s.KEKID)), append(c.deks, s.WrappedDEK)
	c.createdAt, c.expiresAt = append(c.createdAt, s.CreatedAt), append(c.expiresAt, s.ExpiresAt)
}

// args are the columns in the order of insertSegments' parameters.
func (c *segmentColumns) args() []any {
	return []any{c.ord, c.projects, c.replays, c.types, c.segmentIDs, c.paths, c.starts, c.stops,
		c.encodings, c.raws, c.events, c.firstTSs, c.lastTSs, c.fullSnapshots, c.keks, c.deks,
		c.createdAt, c.expiresAt}
}

// insertSegments inserts segs[idx...] in one statement, in key order, and
// returns the indexes of those inserted (the others were there already).
// occurrencesOf lists the occurrences of the segments segs[idx].
func occurrencesOf(segs []Segment, idx []int) []occRow {
	var occs []occRow
	for _, i := range idx {
		s := segs[i]
		for _, o := range s.Occurrences {
			occs = append(occs, occRow{Occurrence: o, project: s.ID.ProjectID, replay: s.ID.ReplayID, segment: s.ID.SegmentID,
				expires: s.ExpiresAt})
		}
	}
	return occs
}

func insertSegments(ctx context.Context, tx pgx.Tx, segs []Segment, idx []int) ([]int, error) {
	var cols segmentColumns
	pos := make(map[segment.ID]int, len(idx))
	for _, i := range idx {
		cols.add(i, segs[i])
		pos[segs[i].ID] = i
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO segments (project_id, replay_id, type, segment_id, blob_path, byte_start, byte_stop,
			encoding, raw_size, event_count, first_ts, last_ts, has_full_snapshot, kek_id, wrapped_dek,
			created_at, expires_at)
		SELECT p, r, ty, s, bp, bs, be, enc, raw, ev, ft, lt, fs, k, d, ca, ea
		FROM unnest($2::bigint[], $3::uuid[], $4::text[], $5::int[], $6::text[], $7::bigint[], $8::bigint[],
			$9::text[], $10::bigint[], $11::int[], $12::bigint[], $13::bigint[], $14::bool[], $15::uuid[],
			$16::bytea[], $17::timestamptz[], $18::timestamptz[], $1::int[])
			AS t(p, r, ty, s, bp, bs, be, enc, raw, ev, ft, lt, fs, k, d, ca, ea, ord)
		ORDER BY p, r, ty, s
		ON CONFLICT DO NOTHING
		RETURNING project_id, replay_id, type, segment_id`, cols.args()...)
	if err != nil {
		return nil, fmt.Errorf("insert segments: %w", err)
	}
	var inserted []int
	var id segment.ID
	var sid int32
	if _, err := pgx.ForEachRow(rows, []any{&id.ProjectID, &id.ReplayID, &id.Type, &sid}, func() error {
		id.SegmentID = int(sid)
		if i, ok := pos[id]; ok {
			inserted = append(inserted, i)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("insert segments: %w", err)
	}
	return inserted, nil
}

// ExistingSegments returns which of ids already have a row. The packer asks
// before it uploads a batch so that redelivered segments cost no object
// bytes (and a batch of only redeliveries no object at all); CommitBatch's
// ON CONFLICT still settles a race with another instance.
func (db *DB) ExistingSegments(ctx context.Context, ids []segment.ID) (map[segment.ID]bool, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	n := len(ids)
	projects, replays, types, segIDs := make([]int64, n), make([]pgtype.UUID, n), make([]string, n), make([]int32, n)
	for i, id := range ids {
		projects[i], replays[i], types[i], segIDs[i] = id.ProjectID, pgUUID(id.ReplayID), id.Type, int32(id.SegmentID)
	}
	rows, err := db.Pool.Query(ctx, `
		SELECT s.project_id, s.replay_id, s.type, s.segment_id
		FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[]) AS t(p, r, ty, sid)
		JOIN segments s ON s.project_id = t.p AND s.replay_id = t.r AND s.type = t.ty AND s.segment_id = t.sid`,
		projects, replays, types, segIDs)
	if err != nil {
		return nil, fmt.Errorf("existing segments: %w", classify(err))
	}
	defer rows.Close()
	known := map[segment.ID]bool{}
	for rows.Next() {
		var id segment.ID
		var sid int32
		if err := rows.Scan(&id.ProjectID, &id.ReplayID, &id.Type, &sid); err != nil {
			return nil, fmt.Errorf("existing segments: %w", err)
		}
		id.SegmentID = int(sid)
		known[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("existing segments: %w", classify(err))
	}
	return known, nil
}

// updateReplayMeta keeps what the SDK said about each replay that got a
// segment stored: the first value of each single field, and the union of
// the lists in order of arrival, capped at replaymeta.MaxListLen. It sends
// one statement per replay, all in one round trip; segments without
// metadata (every publisher but Ingest) and duplicates (their metadata came
// with the first copy) cost nothing.
func updateReplayMeta(ctx context.Context, tx pgx.Tx, segs []Segment, outcomes []Outcome) error {
	merged := map[replayKey]*replaymeta.Meta{}
	var order []replayKey
	for i, s := range segs {
		if outcomes[i] != Stored || s.Meta.IsZero() {
			continue
		}
		k := replayKey{s.ID.ProjectID, s.ID.ReplayID}
		m := merged[k]
		if m == nil {
			m = &replaymeta.Meta{}
			merged[k] = m
			order = append(order, k)
		}
		mergeMeta(m, s.Meta)
	}
	if len(order) == 0 {
		return nil
	}
	var b pgx.Batch
	for _, k := range order {
		m := merged[k]
		b.Queue(`
			UPDATE replays SET
				source = coalesce(source, nullif($3, '')),
				source_id = coalesce(source_id, nullif($4, '')),
				replay_type = coalesce(replay_type, nullif($5, '')),
				sdk = coalesce(sdk, nullif($6, '')),
				user_agent_family = coalesce(user_agent_family, nullif($7, '')),
				urls = `+mergeList("urls", "$8")+`,
				error_ids = `+mergeList("error_ids", "$9")+`,
				trace_ids = `+mergeList("trace_ids", "$10")+`
			WHERE project_id = $1 AND replay_id = $2`,
			k.project, k.replay, m.Source, m.SourceID, m.ReplayType, m.SDK, m.UserAgentFamily,
			nonNil(m.URLs), nonNil(m.ErrorIDs), nonNil(m.TraceIDs))
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("update replay metadata: %w", err)
	}
	return nil
}

// mergeMeta folds m into into: first non-empty single values, lists
// appended (the SQL drops duplicates and caps them).
func mergeMeta(into *replaymeta.Meta, m replaymeta.Meta) {
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&into.Source, m.Source}, {&into.SourceID, m.SourceID}, {&into.ReplayType, m.ReplayType},
		{&into.SDK, m.SDK}, {&into.UserAgentFamily, m.UserAgentFamily},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	into.URLs = append(into.URLs, m.URLs...)
	into.ErrorIDs = append(into.ErrorIDs, m.ErrorIDs...)
	into.TraceIDs = append(into.TraceIDs, m.TraceIDs...)
}

// mergeList is the SQL of a list column with the new entries of param
// appended, duplicates dropped, first MaxListLen kept.
func mergeList(col, param string) string {
	return fmt.Sprintf(`CASE WHEN cardinality(%[2]s::text[]) = 0 THEN %[1]s ELSE (
		SELECT array_agg(v ORDER BY o) FROM (
			SELECT v, min(o) AS o FROM unnest(coalesce(%[1]s, '{}') || %[2]s::text[]) WITH ORDINALITY AS x(v, o)
			GROUP BY v ORDER BY min(o) LIMIT %[3]d) AS y) END`, col, param, replaymeta.MaxListLen)
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// pgUUID is u as pgx encodes it in binary directly: a uuid.UUID goes
// through its driver.Valuer (text formatted, then parsed back) for every
// element of an array parameter, which cost Pack's flush several percent
// of its CPU.
func pgUUID(u uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }
