package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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

func commitBatch(ctx context.Context, tx pgx.Tx, th IssueThrottle, blob Blob, segs []Segment) ([]Outcome, error) {
	if _, err := tx.Exec(ctx,
		`INSERT INTO blobs (path, retention_days, size, segment_count) VALUES ($1, $2, $3, $4)`,
		blob.Path, blob.RetentionDays, blob.Size, blob.SegmentCount); err != nil {
		return nil, fmt.Errorf("insert blob: %w", err)
	}

	// Projects: make sure each has a row, then share-lock them in a fixed
	// order (a project shred takes the update lock).
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
	deadProjects := map[int64]bool{}
	rows, err := tx.Query(ctx,
		`SELECT project_id, deleted_at IS NOT NULL FROM projects
		WHERE project_id = ANY($1) ORDER BY project_id FOR SHARE`, projects)
	if err != nil {
		return nil, fmt.Errorf("lock projects: %w", err)
	}
	for rows.Next() {
		var p int64
		var dead bool
		if err := rows.Scan(&p, &dead); err != nil {
			rows.Close()
			return nil, err
		}
		deadProjects[p] = dead
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock projects: %w", err)
	}

	// Replays: upsert and lock in key order, learn which are tombstoned.
	type agg struct {
		retention       int
		minTS, maxTS    int64
		stored, rawSize int64
		count           int
	}
	replays := map[replayKey]*agg{}
	for _, s := range segs {
		k := replayKey{s.ID.ProjectID, s.ID.ReplayID}
		a := replays[k]
		if a == nil {
			a = &agg{}
			replays[k] = a
		}
		a.retention = max(a.retention, s.RetentionDays)
	}
	keys := make([]replayKey, 0, len(replays))
	for k := range replays {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b replayKey) int {
		if a.project != b.project {
			return int(a.project - b.project)
		}
		return slices.Compare(a.replay[:], b.replay[:])
	})
	var (
		rProjects  []int64
		rIDs       []uuid.UUID
		rRetention []int32
	)
	for _, k := range keys {
		rProjects = append(rProjects, k.project)
		rIDs = append(rIDs, k.replay)
		rRetention = append(rRetention, int32(replays[k].retention))
	}
	deadReplays := map[replayKey]bool{}
	rows, err = tx.Query(ctx, `
		INSERT INTO replays AS r (project_id, replay_id, retention_days, first_seen, last_seen)
		SELECT p, id, ret, now(), now()
		FROM unnest($1::bigint[], $2::uuid[], $3::int[]) WITH ORDINALITY AS t(p, id, ret, ord)
		ORDER BY ord
		ON CONFLICT (project_id, replay_id) DO UPDATE
		SET last_seen = now(), retention_days = greatest(r.retention_days, excluded.retention_days)
		RETURNING project_id, replay_id, deleted_at IS NOT NULL`, rProjects, rIDs, rRetention)
	if err != nil {
		return nil, fmt.Errorf("upsert replays: %w", err)
	}
	for rows.Next() {
		var k replayKey
		var dead bool
		if err := rows.Scan(&k.project, &k.replay, &dead); err != nil {
			rows.Close()
			return nil, err
		}
		if dead {
			deadReplays[k] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("upsert replays: %w", err)
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
	if len(live) > 0 {
		inserted, err := insertSegments(ctx, tx, segs, live)
		if err != nil {
			return nil, err
		}
		for _, i := range inserted {
			outcomes[i] = Stored
			s := segs[i]
			a := replays[replayKey{s.ID.ProjectID, s.ID.ReplayID}]
			a.count++
			a.stored += s.ByteStop - s.ByteStart
			a.rawSize += s.RawSize
			if s.FirstTS > 0 && (a.minTS == 0 || s.FirstTS < a.minTS) {
				a.minTS = s.FirstTS
			}
			a.maxTS = max(a.maxTS, s.LastTS)
		}
		if err := recordOccurrences(ctx, tx, th, occurrencesOf(segs, inserted)); err != nil {
			return nil, err
		}
	}

	// Replay counters, in the same key order.
	var (
		uProjects      []int64
		uIDs           []uuid.UUID
		uCount         []int32
		uStored, uRaw  []int64
		uMinTS, uMaxTS []int64
	)
	for _, k := range keys {
		a := replays[k]
		if a.count == 0 {
			continue
		}
		uProjects = append(uProjects, k.project)
		uIDs = append(uIDs, k.replay)
		uCount = append(uCount, int32(a.count))
		uStored = append(uStored, a.stored)
		uRaw = append(uRaw, a.rawSize)
		uMinTS = append(uMinTS, a.minTS)
		uMaxTS = append(uMaxTS, a.maxTS)
	}
	if len(uProjects) > 0 {
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
			uProjects, uIDs, uCount, uStored, uRaw, uMinTS, uMaxTS); err != nil {
			return nil, fmt.Errorf("update replays: %w", err)
		}
	}
	return outcomes, nil
}

// occurrencesOf lists the occurrences of the segments segs[idx].
func occurrencesOf(segs []Segment, idx []int) []occRow {
	var occs []occRow
	for _, i := range idx {
		s := segs[i]
		for _, o := range s.Occurrences {
			occs = append(occs, occRow{Occurrence: o, project: s.ID.ProjectID, replay: s.ID.ReplayID, segment: s.ID.SegmentID})
		}
	}
	return occs
}

func insertSegments(ctx context.Context, tx pgx.Tx, segs []Segment, idx []int) ([]int, error) {
	n := len(idx)
	var (
		ord       = make([]int32, n)
		projects  = make([]int64, n)
		replayIDs = make([]uuid.UUID, n)
		types     = make([]string, n)
		segIDs    = make([]int32, n)
		paths     = make([]string, n)
		starts    = make([]int64, n)
		stops     = make([]int64, n)
		encs      = make([]string, n)
		raws      = make([]int64, n)
		events    = make([]int32, n)
		firsts    = make([]int64, n)
		lasts     = make([]int64, n)
		fulls     = make([]bool, n)
		keks      = make([]uuid.UUID, n)
		deks      = make([][]byte, n)
		created   = make([]time.Time, n)
		expires   = make([]time.Time, n)
	)
	for j, i := range idx {
		s := segs[i]
		ord[j] = int32(i)
		projects[j] = s.ID.ProjectID
		replayIDs[j] = s.ID.ReplayID
		types[j] = s.ID.Type
		segIDs[j] = int32(s.ID.SegmentID)
		paths[j] = s.BlobPath
		starts[j] = s.ByteStart
		stops[j] = s.ByteStop
		encs[j] = string(s.Encoding)
		raws[j] = s.RawSize
		events[j] = int32(s.EventCount)
		firsts[j] = s.FirstTS
		lasts[j] = s.LastTS
		fulls[j] = s.HasFullSnapshot
		keks[j] = s.KEKID
		deks[j] = s.WrappedDEK
		created[j] = s.CreatedAt
		expires[j] = s.ExpiresAt
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
		RETURNING project_id, replay_id, type, segment_id`,
		ord, projects, replayIDs, types, segIDs, paths, starts, stops, encs, raws, events, firsts, lasts,
		fulls, keks, deks, created, expires)
	if err != nil {
		return nil, fmt.Errorf("insert segments: %w", err)
	}
	defer rows.Close()
	pos := make(map[segment.ID]int, n)
	for _, i := range idx {
		pos[segs[i].ID] = i
	}
	var inserted []int
	for rows.Next() {
		var id segment.ID
		var sid int32
		if err := rows.Scan(&id.ProjectID, &id.ReplayID, &id.Type, &sid); err != nil {
			return nil, err
		}
		id.SegmentID = int(sid)
		if i, ok := pos[id]; ok {
			inserted = append(inserted, i)
		}
	}
	if err := rows.Err(); err != nil {
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
	projects, replays, types, segIDs := make([]int64, n), make([]uuid.UUID, n), make([]string, n), make([]int32, n)
	for i, id := range ids {
		projects[i], replays[i], types[i], segIDs[i] = id.ProjectID, id.ReplayID, id.Type, int32(id.SegmentID)
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
