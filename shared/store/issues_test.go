package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

const baseTS = 1_700_000_000_000

// issueSeeder commits segments carrying occurrences through CommitBatch, as
// Pack does.
type issueSeeder struct {
	t   testing.TB
	db  *store.DB
	kek uuid.UUID
}

func newIssueSeeder(t testing.TB, db *store.DB) *issueSeeder {
	t.Helper()
	kek := uuid.New()
	if err := db.InsertKEK(context.Background(), kek, "projects/p/locations/l/keyRings/r/cryptoKeys/k", []byte("wrapped")); err != nil {
		t.Fatal(err)
	}
	return &issueSeeder{t: t, db: db, kek: kek}
}

// occ is an occurrence of fingerprint fp (edge and final alike) at ts.
func occ(fp string, ts int64) store.Occurrence {
	return store.Occurrence{TS: ts, Kind: "dead_click", EdgeFP: "e-" + fp, FinalFP: "v1:" + fp, Title: "Dead click " + fp,
		Details: json.RawMessage(`{"target":"button#` + fp + `"}`)}
}

// commit stores one segment of replay holding occs and returns its outcome.
func (s *issueSeeder) commit(project int64, replay uuid.UUID, seg int, occs ...store.Occurrence) store.Outcome {
	s.t.Helper()
	now := time.Now()
	path := "r90/issues/" + uuid.NewString()
	segs := []store.Segment{{
		ID:       segment.ID{ProjectID: project, ReplayID: replay, SegmentID: seg, Type: "recording"},
		BlobPath: path, ByteStart: 0, ByteStop: 10, Encoding: segment.Zstd, RawSize: 100, EventCount: 1,
		FirstTS: baseTS, LastTS: baseTS, KEKID: s.kek, WrappedDEK: []byte{1}, RetentionDays: 90,
		CreatedAt: now, ExpiresAt: now.Add(90 * 24 * time.Hour), Occurrences: occs,
	}}
	out, err := s.db.CommitBatch(context.Background(), store.Blob{Path: path, RetentionDays: 90, Size: 10, SegmentCount: 1}, segs)
	if err != nil {
		s.t.Fatal(err)
	}
	return out[0]
}

// groupOf returns the id of the group of final fingerprint fp.
func groupOf(t testing.TB, db *store.DB, project int64, fp string) int64 {
	t.Helper()
	return int64(count(t, db, `SELECT id FROM issue_groups WHERE project_id = $1 AND fingerprint = $2`, project, "v1:"+fp))
}

func TestIssueShortID(t *testing.T) {
	for _, id := range []int64{1, 35, 36, 46, 1 << 40} {
		s := store.ShortID(42, id)
		got, err := store.ParseShortID(42, s)
		if err != nil || got != id {
			t.Errorf("ParseShortID(%q) = %d, %v; want %d", s, got, err, id)
		}
	}
	if s := store.ShortID(42, 46); s != "P42-1A" {
		t.Errorf("ShortID(42, 46) = %q, want P42-1A", s)
	}
	for _, bad := range []string{"", "P41-1A", "P42-", "P42-!!", "X-1", "P42-1A-2", "-5", "0"} {
		if _, err := store.ParseShortID(42, bad); err == nil {
			t.Errorf("ParseShortID(%q) succeeded", bad)
		}
	}
}

func TestIssueRecording(t *testing.T) {
	db := newDB(t)
	s := newIssueSeeder(t, db)
	ctx := context.Background()
	r1, r2 := uuid.New(), uuid.New()
	s.commit(1, r1, 0, occ("a", baseTS+10), occ("a", baseTS+20), occ("b", baseTS+30))
	s.commit(1, r2, 0, occ("a", baseTS+5))
	// A redelivery of a stored segment brings no occurrence twice.
	if got := s.commit(1, r1, 0, occ("a", baseTS+10), occ("a", baseTS+20), occ("b", baseTS+30)); got != store.Duplicate {
		t.Fatalf("redelivery outcome %v", got)
	}
	// The same fingerprint in another project is another group.
	s.commit(2, uuid.New(), 0, occ("a", baseTS))

	a := groupOf(t, db, 1, "a")
	g, err := db.GroupState(ctx, 1, a)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Group{ProjectID: 1, ID: a, Kind: "dead_click", Fingerprint: ptr("v1:a"), Title: "Dead click a",
		Status: store.IssueOpen, TimesSeen: 3, RowCount: 3, ReplayCount: 2, FirstTS: ptr(int64(baseTS + 5)),
		LastTS: ptr(int64(baseTS + 20)), CreatedAt: g.CreatedAt}
	if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("group a (-want +got):\n%s", diff)
	}
	if n := count(t, db, `SELECT count(*) FROM issue_occurrences WHERE project_id = 1`); n != 4 {
		t.Errorf("occurrence rows = %d, want 4", n)
	}
	list, err := db.ListIssues(ctx, 1, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID <= list[1].ID {
		t.Fatalf("list = %+v, want 2 issues newest first", list)
	}
	d, err := db.Issue(ctx, 1, a, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.TimesSeen != 3 || d.ReplayCount != 2 || len(d.Occurrences) != 3 || d.Occurrences[0].TS != baseTS+20 {
		t.Errorf("issue a = %+v", d)
	}
	if !slices.Equal(d.RecentReplays, []uuid.UUID{r1, r2}) {
		t.Errorf("recent replays = %v, want [%s %s]", d.RecentReplays, r1, r2)
	}
	occs, err := db.ReplayIssues(ctx, 1, r1)
	if err != nil {
		t.Fatal(err)
	}
	if len(occs) != 3 || occs[0].TopID != a || occs[0].TS != baseTS+10 {
		t.Errorf("replay issues = %+v", occs)
	}
}

func TestIssueThrottle(t *testing.T) {
	db := newDB(t)
	db.SetIssueThrottle(store.IssueThrottle{Rows: 5, Window: time.Minute})
	s := newIssueSeeder(t, db)
	ctx := context.Background()
	const segments, perSeg = 20, 30
	for seg := range segments {
		var occs []store.Occurrence
		for i := range perSeg {
			// Two windows: the first 10 segments in one, the rest in the next.
			occs = append(occs, occ("hot", baseTS+int64(seg/10)*60_000+int64(seg*perSeg+i)))
		}
		s.commit(1, uuid.New(), seg, occs...)
	}
	g, err := db.GroupState(ctx, 1, groupOf(t, db, 1, "hot"))
	if err != nil {
		t.Fatal(err)
	}
	if g.TimesSeen != segments*perSeg || g.RowCount != 10 || g.ReplayCount != segments {
		t.Errorf("times seen %d (want %d), rows %d (want 10: 5 per window), replays %d (want %d)",
			g.TimesSeen, segments*perSeg, g.RowCount, g.ReplayCount, segments)
	}
	if n := count(t, db, `SELECT count(*) FROM issue_occurrences`); n != 10 {
		t.Errorf("occurrence rows = %d, want 10", n)
	}
	if n := count(t, db, `SELECT sum(times_seen) FROM issue_replays`); n != segments*perSeg {
		t.Errorf("per-replay counts sum to %d, want %d", n, segments*perSeg)
	}
	// The sweep drops windows that started before its cutoff.
	n, err := db.ExpireIssueThrottle(ctx, time.UnixMilli(baseTS), 100)
	if err != nil || n != 1 {
		t.Errorf("ExpireIssueThrottle = %d, %v; want the first window", n, err)
	}
	if n := count(t, db, `SELECT count(*) FROM issue_throttle`); n != 1 {
		t.Errorf("throttle windows left = %d, want 1", n)
	}
}

func TestShredUnlinksIssues(t *testing.T) {
	db := newDB(t)
	s := newIssueSeeder(t, db)
	ctx := context.Background()
	gone, kept := uuid.New(), uuid.New()
	s.commit(1, gone, 0, occ("a", baseTS+1), occ("a", baseTS+2), occ("b", baseTS+3))
	s.commit(1, gone, 1, occ("a", baseTS+900))
	s.commit(1, kept, 0, occ("a", baseTS+50))
	a, b := groupOf(t, db, 1, "a"), groupOf(t, db, 1, "b")
	if _, err := db.AddIssueNote(ctx, 1, b, "seen on checkout", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ShredReplays(ctx, 1, []uuid.UUID{gone}, "gdpr"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"issue_occurrences", "issue_replays"} {
		if n := count(t, db, `SELECT count(*) FROM `+table+` WHERE replay_id = $1`, gone); n != 0 {
			t.Errorf("%s rows naming the shredded replay = %d", table, n)
		}
	}
	ga, err := db.GroupState(ctx, 1, a)
	if err != nil {
		t.Fatal(err)
	}
	if ga.TimesSeen != 1 || ga.RowCount != 1 || ga.ReplayCount != 1 || *ga.FirstTS != baseTS+50 || *ga.LastTS != baseTS+50 {
		t.Errorf("group a after shred = %+v, want the kept replay's one occurrence", ga)
	}
	gb, err := db.GroupState(ctx, 1, b)
	if err != nil {
		t.Fatal(err)
	}
	if gb.TimesSeen != 0 || gb.ReplayCount != 0 || gb.FirstTS != nil || len(gb.Notes) != 1 {
		t.Errorf("group b after shred = %+v, want no counts, its note kept", gb)
	}
	// A redelivered segment of the shredded replay brings nothing back.
	if got := s.commit(1, gone, 2, occ("a", baseTS+1000)); got != store.Shredded {
		t.Errorf("late segment outcome %v, want Shredded", got)
	}
	if n := count(t, db, `SELECT times_seen FROM issue_groups WHERE project_id = 1 AND id = $1`, a); n != 1 {
		t.Errorf("times seen after a late segment = %d, want 1", n)
	}

	if _, err := db.ShredProject(ctx, 1, "gdpr"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"issue_occurrences", "issue_replays", "issue_groups", "issue_notes", "issue_throttle"} {
		if n := count(t, db, `SELECT count(*) FROM `+table+` WHERE project_id = 1`); n != 0 {
			t.Errorf("%s rows of the shredded project = %d", table, n)
		}
	}
}

// TestMergeUnmergeProperty runs random sequences of merges, unmerges,
// notes, status changes and new occurrences on random groups, then undoes
// every merge left, and checks that every original group is exactly what
// the notes, status changes and occurrences alone made of it.
func TestMergeUnmergeProperty(t *testing.T) {
	db := newDB(t)
	s := newIssueSeeder(t, db)
	ctx := context.Background()
	const seeds, groups, ops = 8, 8, 40
	for seed := range uint64(seeds) {
		project := int64(100 + seed)
		rng := rand.New(rand.NewPCG(seed, 19))
		var ids []int64
		want := map[int64]store.Group{}
		for i := range groups {
			fp := fmt.Sprintf("g%d", i)
			s.commit(project, uuid.New(), 0, occ(fp, baseTS+int64(i)))
			id := groupOf(t, db, project, fp)
			ids = append(ids, id)
			g, err := db.GroupState(ctx, project, id)
			if err != nil {
				t.Fatal(err)
			}
			want[id] = g
		}
		var views []int64
		all := func() []int64 { return append(slices.Clone(ids), views...) }
		var total int64 = groups
		for op := range ops {
			switch rng.IntN(5) {
			case 0, 1: // merge 2 or 3 random groups or views (members stand for their top view)
				pick := all()
				rng.Shuffle(len(pick), func(i, j int) { pick[i], pick[j] = pick[j], pick[i] })
				v, err := db.Merge(ctx, project, pick[:2+rng.IntN(2)])
				if err != nil {
					continue // all in one view already
				}
				views = append(views, v)
			case 2: // unmerge a random view
				if len(views) == 0 {
					continue
				}
				i := rng.IntN(len(views))
				if err := db.Unmerge(ctx, project, views[i]); err != nil {
					t.Fatalf("seed %d op %d: %v", seed, op, err)
				}
				views = slices.Delete(views, i, i+1)
			case 3: // a note or a status change on any group or view
				target := all()[rng.IntN(len(all()))]
				if rng.IntN(2) == 0 {
					n, err := db.AddIssueNote(ctx, project, target, fmt.Sprintf("note %d", op), "bob")
					if err != nil {
						t.Fatal(err)
					}
					if g, ok := want[target]; ok {
						g.Notes = append(g.Notes, n)
						want[target] = g
					}
				} else {
					st := []string{store.IssueOpen, store.IssueResolved, store.IssueIgnored}[rng.IntN(3)]
					at, err := db.SetIssueStatus(ctx, project, target, st)
					if err != nil {
						t.Fatal(err)
					}
					if g, ok := want[target]; ok {
						g.Status, g.StatusAt = st, &at
						want[target] = g
					}
				}
			case 4: // new occurrences of a random group while it may be merged
				i := rng.IntN(groups)
				ts := baseTS + 1000 + int64(op)
				n := 1 + rng.IntN(3)
				var occs []store.Occurrence
				for range n {
					occs = append(occs, occ(fmt.Sprintf("g%d", i), ts))
					ts++
				}
				s.commit(project, uuid.New(), 0, occs...)
				g := want[ids[i]]
				g.TimesSeen += int64(n)
				g.RowCount += int64(n)
				g.ReplayCount++
				g.LastTS = ptr(ts - 1)
				want[ids[i]] = g
				total += int64(n)
			}
			// Invariant: the top-level issues' counts add up to every occurrence.
			list, err := db.ListIssues(ctx, project, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			for _, is := range list {
				sum += is.TimesSeen
			}
			if sum != total {
				t.Fatalf("seed %d op %d: top-level issues count %d occurrences, want %d", seed, op, sum, total)
			}
		}
		// Undo every merge left, newest first (any order would do).
		for i := len(views) - 1; i >= 0; i-- {
			if err := db.Unmerge(ctx, project, views[i]); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			got, err := db.GroupState(ctx, project, id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want[id], got); diff != "" {
				t.Errorf("seed %d: group %s after undoing the merges (-want +got):\n%s", seed, store.ShortID(project, id), diff)
			}
		}
		if n := count(t, db, `SELECT count(*) FROM issue_groups WHERE project_id = $1 AND (is_view OR parent_id IS NOT NULL)`, project); n != 0 {
			t.Errorf("seed %d: %d views or members left", seed, n)
		}
	}
}

func TestMergeRedirects(t *testing.T) {
	db := newDB(t)
	s := newIssueSeeder(t, db)
	ctx := context.Background()
	r := uuid.New()
	s.commit(1, r, 0, occ("a", baseTS), occ("b", baseTS+1), occ("b", baseTS+2), occ("c", baseTS+3))
	a, b, c := groupOf(t, db, 1, "a"), groupOf(t, db, 1, "b"), groupOf(t, db, 1, "c")
	v, err := db.Merge(ctx, 1, []int64{a, b})
	if err != nil {
		t.Fatal(err)
	}
	super, err := db.Merge(ctx, 1, []int64{a, c}) // a stands for v: a supergroup of v and c
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Issue(ctx, 1, b, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != super || d.RequestedID != b || d.TimesSeen != 4 || d.ReplayCount != 1 || len(d.Members) != 2 ||
		len(d.Occurrences) != 4 || *d.FirstTS != baseTS || *d.LastTS != baseTS+3 {
		t.Errorf("issue b redirects to %+v, want the supergroup %d with 4 occurrences", d, super)
	}
	if !slices.Equal(d.RecentReplays, []uuid.UUID{r}) {
		t.Errorf("recent replays of the supergroup = %v, want the one replay once", d.RecentReplays)
	}
	if _, err := db.Merge(ctx, 1, []int64{a, c}); err == nil {
		t.Error("merging two members of one view succeeded")
	}
	if err := db.Unmerge(ctx, 1, a); err == nil {
		t.Error("unmerging a plain group succeeded")
	}
	if err := db.Unmerge(ctx, 1, v); err != nil {
		t.Fatal(err)
	}
	// v's members now sit in the supergroup directly.
	d, err = db.Issue(ctx, 1, a, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != super || len(d.Members) != 3 || d.TimesSeen != 4 {
		t.Errorf("after unmerging the inner view: %+v", d)
	}
	list, err := db.ListIssues(ctx, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != super || list[0].Leaves != 3 {
		t.Errorf("list = %+v, want only the supergroup", list)
	}
	if _, err := db.Issue(ctx, 1, v, false); err == nil {
		t.Error("the unmerged view is still there")
	}
}

func ptr[T any](v T) *T { return &v }

// TestExpireIssueReplays: once a replay's segments have expired, the sweep
// unlinks it from its issues exactly as a shred does.
func TestExpireIssueReplays(t *testing.T) {
	db := newDB(t)
	s := newIssueSeeder(t, db)
	ctx := context.Background()
	old, fresh := uuid.New(), uuid.New()
	s.commit(1, old, 0, occ("a", baseTS+1), occ("a", baseTS+2))
	s.commit(1, fresh, 0, occ("a", baseTS+50))
	a := groupOf(t, db, 1, "a")
	// The link keeps the segments' expiry.
	if n := count(t, db, `SELECT count(*) FROM issue_replays r JOIN segments s USING (project_id, replay_id)
		WHERE r.expires_at = s.expires_at`); n != 2 {
		t.Fatalf("links carrying their segment's expiry = %d, want 2", n)
	}
	if n, err := db.ExpireIssueReplays(ctx, time.Now(), 100); err != nil || n != 0 {
		t.Fatalf("ExpireIssueReplays before expiry = %d, %v", n, err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE issue_replays SET expires_at = now() - interval '1 hour' WHERE replay_id = $1`, old); err != nil {
		t.Fatal(err)
	}
	if n, err := db.ExpireIssueReplays(ctx, time.Now(), 100); err != nil || n != 1 {
		t.Fatalf("ExpireIssueReplays = %d, %v; want 1", n, err)
	}
	g, err := db.GroupState(ctx, 1, a)
	if err != nil {
		t.Fatal(err)
	}
	if g.TimesSeen != 1 || g.RowCount != 1 || g.ReplayCount != 1 || *g.FirstTS != baseTS+50 {
		t.Errorf("group after expiry = %+v, want only the fresh replay's occurrence", g)
	}
	if n := count(t, db, `SELECT count(*) FROM issue_occurrences WHERE replay_id = $1`, old); n != 0 {
		t.Errorf("occurrences of the expired replay = %d", n)
	}
}

// TestIssueGroupCap: past the project's group cap, new fingerprints share
// one overflow group per kind, so no input creates groups without bound.
func TestIssueGroupCap(t *testing.T) {
	db := newDB(t)
	db.SetIssueThrottle(store.IssueThrottle{MaxGroups: 3})
	s := newIssueSeeder(t, db)
	s.commit(1, uuid.New(), 0, occ("a", baseTS), occ("b", baseTS))
	s.commit(1, uuid.New(), 0, occ("c", baseTS), occ("d", baseTS), occ("e", baseTS))
	s.commit(1, uuid.New(), 0, occ("f", baseTS), occ("a", baseTS+1))
	s.commit(2, uuid.New(), 0, occ("x", baseTS)) // another project has its own cap
	if n := count(t, db, `SELECT count(*) FROM issue_groups WHERE project_id = 1`); n != 4 {
		t.Errorf("groups = %d, want 4 (a, b, c and one overflow group)", n)
	}
	if n := count(t, db, `SELECT times_seen FROM issue_groups WHERE project_id = 1 AND fingerprint = 'overflow:dead_click'`); n != 3 {
		t.Errorf("overflow group counted %d, want 3 (d, e, f)", n)
	}
	if n := count(t, db, `SELECT times_seen FROM issue_groups WHERE project_id = 1 AND fingerprint = 'v1:a'`); n != 2 {
		t.Errorf("group a counted %d, want 2", n)
	}
	if n := count(t, db, `SELECT count(DISTINCT final_fp) FROM issue_occurrences WHERE project_id = 1 AND group_id =
		(SELECT id FROM issue_groups WHERE project_id = 1 AND fingerprint = 'overflow:dead_click')`); n != 3 {
		t.Errorf("overflow occurrences keep %d final fingerprints, want 3", n)
	}
	if n := count(t, db, `SELECT count(*) FROM issue_groups WHERE project_id = 2`); n != 1 {
		t.Errorf("project 2 groups = %d, want 1", n)
	}
}

// TestIssueGroupRace: flushes on several instances that meet one new
// fingerprint at once create its group once and count every occurrence.
func TestIssueGroupRace(t *testing.T) {
	db := newDB(t)
	s := newIssueSeeder(t, db)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.commit(1, uuid.New(), 0, occ("new", baseTS+int64(i)), occ(fmt.Sprintf("own%d", i), baseTS))
		}()
	}
	wg.Wait()
	if c := count(t, db, `SELECT count(*) FROM issue_groups WHERE project_id = 1 AND fingerprint = 'v1:new'`); c != 1 {
		t.Errorf("groups of one fingerprint = %d, want 1", c)
	}
	if c := count(t, db, `SELECT times_seen FROM issue_groups WHERE project_id = 1 AND fingerprint = 'v1:new'`); c != n {
		t.Errorf("times seen = %d, want %d", c, n)
	}
	// Ids are dense: every id handed out names a group.
	if c := count(t, db, `SELECT last_id - (SELECT count(*) FROM issue_groups WHERE project_id = 1) FROM issue_projects WHERE project_id = 1`); c != 0 {
		t.Errorf("%d ids handed out without a group", c)
	}
}
