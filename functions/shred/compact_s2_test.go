package shred

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// TestCompactScrubbed compacts a replay whose segments the PII scrub
// rewrote, which Pack stores as they are (REWRITTEN_ENCODING=plain, the
// default) or as s2 (the encoding only it writes): copying keeps their
// encoding, re-encoding turns them into zstd (so the storage ratio comes
// back for idle replays), and Serve returns the same bytes before and
// after either.
func TestCompactScrubbed(t *testing.T) {
	for _, mode := range compactModes {
		for _, rewritten := range []segment.Encoding{segment.Plain, segment.S2} {
			t.Run(mode.name+"/"+string(rewritten), func(t *testing.T) { testCompactScrubbed(t, mode.level, rewritten) })
		}
	}
}

func testCompactScrubbed(t *testing.T, level segment.Level, rewritten segment.Encoding) {
	pc := envPacker(20*time.Millisecond, math.MaxInt32)
	pc.RewrittenPlain = rewritten == segment.Plain
	e := newEnvPacking(t, compactConfig(level), pc)
	ctx := context.Background()
	const project = 7
	hash := rulestest.Push(t, e.d.DB, e.d.Blobs, "piiscrub", rulestest.Build(t, "shared/rules/modules/piiscrub/wasm"))
	rulestest.Assign(t, e.d.DB, store.RuleAssignment{ProjectID: project, Name: "scrub", ModuleHash: hash})
	lim := rules.DefaultLimits()
	lim.Timeout = 30 * time.Second // a busy machine must not turn this into a reject
	engine := rules.NewEngine(lim)
	t.Cleanup(engine.Close)
	rs := rules.NewSet(engine, e.d.DB, e.d.Blobs, 16<<20)
	if err := rs.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	e.packer.UseRules(rs)

	// workload.Segment makes a third of its events inputs, which
	// the scrub masks: most segments are rewritten.
	r := newMixedReplay(rand.New(rand.NewPCG(31, 32)), project, 8)
	e.pack(t, packer.Stored, r)
	rows := e.segments(t, project, r.id)
	storedAs, notZstd := 0, int64(0)
	for _, x := range rows {
		if x.enc == string(rewritten) {
			storedAs++
		}
		if x.enc != string(segment.Zstd) {
			notZstd++
		}
	}
	if storedAs < len(rows)/2 {
		t.Fatalf("%d of %d scrubbed segments stored as %s, want most", storedAs, len(rows), rewritten)
	}
	status, before := e.getRecording(t, r)
	if status != http.StatusOK {
		t.Fatalf("Serve before compaction: %d %.200s", status, before)
	}
	if _, err := e.d.DB.Pool.Exec(ctx, `UPDATE blobs SET created_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	rep, complete, err := e.svc.Compact(ctx, time.Now().Add(time.Minute))
	if err != nil || !complete || rep.ReplaysCompacted != 1 || rep.ReplaysFailed != 0 {
		t.Fatalf("compact: %+v, %v, %v", rep, complete, err)
	}
	if reencoded := map[bool]int64{false: 0, true: notZstd}[level != 0]; rep.SegmentsReencoded != reencoded {
		t.Errorf("%d segments re-encoded, want %d", rep.SegmentsReencoded, reencoded)
	}
	for i, x := range e.segments(t, project, r.id) {
		want := rows[i].enc // copying keeps every encoding
		if level != 0 {
			want = string(segment.Zstd)
		}
		if x.enc != want {
			t.Errorf("segment %s is %s after compaction, want %s", x.id, x.enc, want)
		}
	}
	if _, ok := e.onePieceRows(t, r); !ok {
		t.Fatal("replay not in one piece after compaction")
	}
	status, after := e.getRecording(t, r)
	if status != http.StatusOK || !bytes.Equal(after, before) {
		t.Fatalf("Serve after compaction: %d, %d bytes differing from the %d before", status, len(after), len(before))
	}
}
