package shred

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/functions/serve"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// compactModes are compaction's two modes: copying sealed bytes
// (COMPACT_ZSTD_LEVEL=off) and re-encoding segments to zstd.
var compactModes = []struct {
	name  string
	level segment.Level
}{
	{"copy", 0},
	{"zstd", segment.LevelDefault},
}

func compactConfig(level segment.Level) Config {
	cfg := testConfig()
	cfg.CompactIdle = time.Millisecond
	cfg.CompactMaxBytes = 64 << 20
	cfg.CompactLevel = level
	cfg.MaxDecompressed = 8 << 20
	return cfg
}

// newCompactEnv is an env whose packer keeps segments in the encoding they
// came in (as for 90-day segments in production: plain ones become zstd),
// and whose compaction runs at level (0: copy only).
func newCompactEnv(t *testing.T, level segment.Level, flushAge time.Duration) *env {
	t.Helper()
	return newEnvTranscoding(t, compactConfig(level), flushAge, math.MaxInt32)
}

// newMixedReplay is newReplay with segments sent in every encoding.
func newMixedReplay(rng *rand.Rand, project int64, segments int) *replay {
	r := newReplay(rng, project, segments)
	r.mixed = true
	return r
}

// storedEncoding is what Pack stores segment seg of a mixed replay as.
func storedEncoding(seg int) string {
	switch seg % 4 {
	case 0:
		return "gzip"
	case 1:
		return "zlib"
	}
	return "zstd"
}

// checkEncodings fails unless r's rows are zstd after a compaction at
// level, or, copying, still in the encoding Pack stored.
func (e *env) checkEncodings(t testing.TB, r *replay, level segment.Level) {
	t.Helper()
	for _, x := range e.segments(t, r.project, r.id) {
		want := storedEncoding(x.id.SegmentID)
		if level != 0 {
			want = "zstd"
		}
		if x.enc != want {
			t.Errorf("segment %s stored as %s after compaction, want %s", x.id, x.enc, want)
		}
	}
}

// readServe reads r's recording through the real Serve handler and fails
// unless its events are the original segments' events, byte for byte.
func (e *env) readServe(t testing.TB, r *replay) {
	t.Helper()
	status, body := e.getRecording(t, r)
	if status != http.StatusOK {
		t.Fatalf("Serve: replay %s: %d %.200s", r.id, status, body)
	}
	var got []json.RawMessage
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("Serve: replay %s: %v", r.id, err)
	}
	var want []json.RawMessage
	for _, raw := range r.raw {
		var evs []json.RawMessage
		if err := json.Unmarshal(raw, &evs); err != nil {
			t.Fatal(err)
		}
		want = append(want, evs...)
	}
	if len(got) != len(want) {
		t.Fatalf("Serve: replay %s: %d events, want %d", r.id, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("Serve: replay %s: event %d differs from the original", r.id, i)
		}
	}
}

// getRecording asks Serve for r's whole recording.
func (e *env) getRecording(t testing.TB, r *replay) (int, []byte) {
	t.Helper()
	srv := serve.New(serve.Config{}, e.d.DB, e.d.Blobs, e.keks, auth.NewVerifier(testSecret, auth.Policy{}))
	req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/v1/projects/%d/replays/%s/recording", r.project, r.id), nil)
	req.Header.Set("Authorization", "Bearer "+token(t, r.project, auth.ScopeRead))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// readAll checks r both ways: opened by hand segment by segment
// (readBack) and read whole through Serve.
func (e *env) readAll(t testing.TB, r *replay) {
	t.Helper()
	e.readBack(t, r)
	e.readServe(t, r)
}

// packSpread stores r's segments a few at a time, each group in its own
// batch, so the replay lies in several objects as a live replay does.
func (e *env) packSpread(t *testing.T, r *replay, groups int) {
	t.Helper()
	n := len(r.raw)
	for g := range groups {
		lo, hi := g*n/groups, (g+1)*n/groups
		// Each group is packed alone; message ids carry the segment id.
		var wg sync.WaitGroup
		for s := lo; s < hi; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.packer.Ingest(context.Background(), r.message(s))
				if err != nil || res != packer.Stored {
					t.Errorf("ingest %s/%d: %v, %v", r.id, s, res, err)
				}
			}()
		}
		wg.Wait()
	}
}

// onePieceRows reports whether r's rows lie back to back in one object.
func (e *env) onePieceRows(t *testing.T, r *replay) (string, bool) {
	t.Helper()
	rows := e.segments(t, r.project, r.id)
	for i := 1; i < len(rows); i++ {
		if rows[i].path != rows[0].path || rows[i].start != rows[i-1].stop {
			return "", false
		}
	}
	if len(rows) == 0 {
		return "", false
	}
	return rows[0].path, true
}

// TestCompact re-packs replays spread over several objects, checks that
// each then lies in one object and reads back byte for byte, that a second
// pass changes nothing, and that the sweep frees the old objects only once
// the grace has passed, while the replays stay readable.
func TestCompact(t *testing.T) {
	for _, mode := range compactModes {
		t.Run(mode.name, func(t *testing.T) { testCompact(t, mode.level) })
	}
}

func testCompact(t *testing.T, level segment.Level) {
	e := newCompactEnv(t, level, 20*time.Millisecond)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	a, b := newMixedReplay(rng, 7, 12), newMixedReplay(rng, 8, 7)
	e.packSpread(t, a, 4)
	e.packSpread(t, b, 3)
	before := objects(t, e)
	if len(before) < 7 {
		t.Fatalf("%d objects; the test wants the replays spread", len(before))
	}
	// Old enough for the sweep, were they empty: only the release time
	// keeps them.
	if _, err := e.d.DB.Pool.Exec(ctx, `UPDATE blobs SET created_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}

	rep, complete, err := e.svc.Compact(ctx, time.Now().Add(time.Minute))
	if err != nil || !complete {
		t.Fatalf("compact: %+v, %v, %v", rep, complete, err)
	}
	if rep.ReplaysCompacted != 2 || rep.SegmentsMoved != 19 || rep.ReplaysFailed != 0 {
		t.Errorf("report %+v; want 2 replays and 19 segments", rep)
	}
	// 6 of a's 12 segments and 4 of b's 7 are stored gzip or zlib.
	if wantRe := map[bool]int64{false: 0, true: 10}[level != 0]; rep.SegmentsReencoded != wantRe {
		t.Errorf("%d segments re-encoded, want %d", rep.SegmentsReencoded, wantRe)
	}
	if level == 0 && rep.BytesCopied != rep.BytesRead {
		t.Errorf("copying wrote %d bytes of %d", rep.BytesCopied, rep.BytesRead)
	}
	t.Logf("compaction read %d sealed bytes, wrote %d", rep.BytesRead, rep.BytesCopied)
	paths := map[string]bool{}
	for _, r := range []*replay{a, b} {
		p, ok := e.onePieceRows(t, r)
		if !ok {
			t.Fatalf("replay %s is not in one piece after compaction", r.id)
		}
		paths[p] = true
		e.checkEncodings(t, r, level)
		e.readAll(t, r)
	}

	// Idempotent: nothing more to do.
	rep, _, err = e.svc.Compact(ctx, time.Now().Add(time.Minute))
	if err != nil || rep != (CompactReport{}) {
		t.Errorf("second compact: %+v, %v; want nothing done", rep, err)
	}

	// Within the grace the old objects stay (a read may be using them).
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := objects(t, e); len(got) != len(before)+2 {
		t.Errorf("%d objects right after compaction, want %d (old ones kept for the grace)", len(got), len(before)+2)
	}
	// Past the grace only the compacted objects remain.
	e.svc.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got := objects(t, e)
	slices.Sort(got)
	want := []string{}
	for p := range paths {
		want = append(want, p)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("objects after the sweep: %v, want the compacted ones %v", got, want)
	}
	for _, r := range []*replay{a, b} {
		e.readAll(t, r)
	}
}

// TestCompactRaces runs compaction against shreds and late segments of the
// same replay over 50 rounds. In every round: a shredded replay has no
// segment row (no key) afterwards, and none comes back from the compaction
// or a redelivery; a surviving replay reads back byte for byte, every
// segment acked as stored included, and the next pass leaves it in one
// piece.
func TestCompactRaces(t *testing.T) {
	for _, mode := range compactModes {
		t.Run(mode.name, func(t *testing.T) { testCompactRaces(t, mode.level) })
	}
}

func testCompactRaces(t *testing.T, level segment.Level) {
	const rounds = 50
	e := newCompactEnv(t, level, 5*time.Millisecond)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(23, 24))
	var shreds, lateStored, compactedFirst int
	for round := range rounds {
		r := newMixedReplay(rng, 9, 6)
		e.packSpread(t, r, 3)
		// Late segments, ready to send.
		late := 2 + rng.IntN(3)
		for s := range late {
			r.raw = append(r.raw, workload.Segment(rng, 6+s, 1_700_000_100_000+int64(s)*10_000, 800))
		}
		shred := rng.IntN(2) == 0
		delays := make([]time.Duration, late)
		for s := range delays {
			delays[s] = time.Duration(rng.IntN(8)) * time.Millisecond
		}
		var (
			wg      sync.WaitGroup
			results = make([]packer.Result, late)
			rep     CompactReport
			cerr    error
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, _, cerr = e.svc.Compact(ctx, time.Now().Add(time.Minute))
		}()
		for s := range late {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(delays[s])
				res, err := e.packer.Ingest(ctx, r.message(6+s))
				if err != nil {
					t.Errorf("round %d: late segment: %v", round, err)
				}
				results[s] = res
			}()
		}
		if shred {
			time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
			if _, err := e.d.DB.ShredReplays(ctx, r.project, []uuid.UUID{r.id}, "test"); err != nil {
				t.Fatal(err)
			}
			if rows := e.segments(t, r.project, r.id); len(rows) != 0 {
				t.Fatalf("round %d: %d segment rows right after the shred", round, len(rows))
			}
		}
		wg.Wait()
		if cerr != nil || rep.ReplaysFailed != 0 {
			t.Fatalf("round %d: compact: %+v, %v", round, rep, cerr)
		}
		if rep.ReplaysCompacted > 0 {
			compactedFirst++
		}

		// Which segments must survive.
		var keep []int
		for s := range 6 {
			keep = append(keep, s)
		}
		for s, res := range results {
			switch {
			case res == packer.Stored:
				keep = append(keep, 6+s)
				lateStored++
			case res == packer.Shredded && shred:
			default:
				t.Errorf("round %d: late segment %d: %v", round, 6+s, res)
			}
		}
		if shred {
			shreds++
			// Again, after everything: no compaction or redelivery brings
			// anything back.
			if _, _, err := e.svc.Compact(ctx, time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			e.pack(t, packer.Shredded, r)
			if rows := e.segments(t, r.project, r.id); len(rows) != 0 {
				t.Fatalf("round %d: %d segment rows of a shredded replay", round, len(rows))
			}
			if status, _ := e.getRecording(t, r); status != http.StatusGone {
				t.Fatalf("round %d: Serve answers %d for a shredded replay, want 410", round, status)
			}
			continue
		}
		// Not shredded: every late segment was stored, so the replay is
		// segments 0..6+late-1.
		if len(keep) != 6+late {
			t.Fatalf("round %d: %d segments stored, want %d", round, len(keep), 6+late)
		}
		survivor := &replay{project: r.project, id: r.id, raw: r.raw[:6+late], mixed: true}
		e.readAll(t, survivor)
		if _, _, err := e.svc.Compact(ctx, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.onePieceRows(t, r); !ok {
			t.Fatalf("round %d: not in one piece after the pass that followed the late segments", round)
		}
		e.checkEncodings(t, survivor, level)
		e.readAll(t, survivor)
	}
	t.Logf("%d rounds: %d shredded, %d late segments stored, %d compactions won their race", rounds, shreds, lateStored, compactedFirst)
	if shreds == 0 || shreds == rounds || lateStored == 0 || compactedFirst == 0 {
		t.Errorf("the races were one-sided")
	}
}

// TestCompactCrash stops a compaction after each step and checks that the
// replay reads back byte for byte at once, after a sweep past the grace
// (which removes what the stopped run left), and after a compaction that
// then runs to the end.
func TestCompactCrash(t *testing.T) {
	for _, mode := range compactModes {
		for _, step := range []compactStep{stepRead, stepReencode, stepUpload, stepCommit} {
			if step == stepReencode && mode.level == 0 {
				continue // copying has no such step
			}
			t.Run(mode.name+"/"+string(step), func(t *testing.T) { testCompactCrash(t, mode.level, step) })
		}
	}
}

func testCompactCrash(t *testing.T, level segment.Level, step compactStep) {
	e := newCompactEnv(t, level, 20*time.Millisecond)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(25, 26))
	r := newMixedReplay(rng, 7, 9)
	e.packSpread(t, r, 3)
	spread := len(objects(t, e))

	e.svc.crashAt = func(s compactStep) error {
		if s == step {
			return errCrash
		}
		return nil
	}
	rep, _, err := e.svc.Compact(ctx, time.Now().Add(time.Minute))
	if err != nil || rep.ReplaysFailed != 1 {
		t.Fatalf("compact with a crash after %s: %+v, %v", step, rep, err)
	}
	e.readAll(t, r)
	wantObjects := spread
	if step == stepUpload || step == stepCommit {
		wantObjects++
	}
	if n := len(objects(t, e)); n != wantObjects {
		t.Errorf("%d objects after the crash, want %d", n, wantObjects)
	}

	// Past the grace the sweep removes the leftovers: an orphan
	// (upload) or the old objects (commit).
	e.svc.crashAt = nil
	e.svc.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	e.readAll(t, r)
	// After a crash before the commit the sweep's own compaction
	// pass re-packs the replay first; either way the old objects
	// are then freed.
	if n := len(objects(t, e)); n != 1 {
		t.Errorf("%d objects after the sweep, want the compacted one", n)
	}
	if _, ok := e.onePieceRows(t, r); !ok {
		t.Errorf("not in one piece")
	}
	e.checkEncodings(t, r, level)
	e.readAll(t, r)
}

// TestCompactReencodeBound: re-encoding decodes each segment under
// MaxDecompressed. A segment larger than Shred's bound (a bomb, or a bound
// set below Pack's) is not decoded past it: it is copied still sealed and
// keeps its encoding, while the others are re-encoded, and the replay is
// compacted and reads back whole.
func TestCompactReencodeBound(t *testing.T) {
	const bound = 1500
	cfg := compactConfig(segment.LevelDefault)
	cfg.MaxDecompressed = bound
	e := newEnvTranscoding(t, cfg, 20*time.Millisecond, math.MaxInt32)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(27, 28))
	r := newMixedReplay(rng, 7, 16)
	e.packSpread(t, r, 4)
	var big, small int
	for s, raw := range r.raw {
		if storedEncoding(s) == "zstd" {
			continue
		}
		if len(raw) > bound {
			big++
		} else {
			small++
		}
	}
	if big == 0 || small == 0 {
		t.Fatalf("%d gzip/zlib segments over the bound, %d under; the test wants both", big, small)
	}
	rep, _, err := e.svc.Compact(ctx, time.Now().Add(time.Minute))
	if err != nil || rep.ReplaysCompacted != 1 || rep.ReplaysFailed != 0 || rep.SegmentsReencoded != int64(small) {
		t.Fatalf("compact: %+v, %v; want 1 replay, %d segments re-encoded", rep, err, small)
	}
	for _, x := range e.segments(t, r.project, r.id) {
		want := "zstd"
		if len(r.raw[x.id.SegmentID]) > bound {
			want = storedEncoding(x.id.SegmentID)
		}
		if x.enc != want {
			t.Errorf("segment %s (%d bytes) stored as %s, want %s", x.id, len(r.raw[x.id.SegmentID]), x.enc, want)
		}
	}
	e.readAll(t, r)
	// The pass after leaves it be: what could be re-encoded was.
	if rep, _, err := e.svc.Compact(ctx, time.Now().Add(time.Minute)); err != nil || rep != (CompactReport{}) {
		t.Errorf("second compact: %+v, %v; want nothing done", rep, err)
	}
}

// TestCompactReencodeNeedsKEKs: a Service told to re-encode without the
// KEK cache refuses the pass instead of failing every replay.
func TestCompactReencodeNeedsKEKs(t *testing.T) {
	e := newCompactEnv(t, 0, 20*time.Millisecond)
	e.svc.cfg.CompactLevel = segment.LevelDefault
	if _, _, err := e.svc.Compact(context.Background(), time.Now().Add(time.Minute)); err == nil {
		t.Error("compact re-encoding without a KEK cache: no error")
	}
}
