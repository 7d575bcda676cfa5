package packer

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestPassClearsForTheScrub: for a project with a scrub, Pack's validating
// pass runs with the rules' ScrubCheck and notes the events it cleared in
// the spans it hands the rules; on a recording without personal data (the
// scrub not masking inputs) it clears most events, and on every segment,
// the checkout's with its secrets included, the rules' verdict with those
// spans is byte for byte the verdict of rules that read every event
// themselves (Apply).
func TestPassClearsForTheScrub(t *testing.T) {
	d := testenv.NewDeps(t)
	scrub := pushScrub(t, d)
	const masking, clean, none = 31, 32, 33
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: masking, Name: "scrub", ModuleHash: scrub})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: clean, Name: "scrub", ModuleHash: scrub, Config: []byte(`{"mask_all_inputs":false}`)})
	p := newPacker(t, d, testConfig(), &recordReject{})
	rs := newRuleSet(t, d)
	p.UseRules(rs)
	ctx := context.Background()
	if rs.ScrubCheck(none) != nil || rs.ScrubCheck(masking) == nil {
		t.Fatal("a check for a project without rules, or none for a scrub's")
	}

	segs := workload.Recording(rand.New(rand.NewPCG(5, 6)), 3, 30<<10, 30<<10, 1_700_000_000_000)
	form := workload.FormSession(workload.DefaultPII(), 1_700_000_000_000)
	cleared, total := 0, 0
	for _, project := range []int64{masking, clean} {
		for i, events := range append(append([][]byte{}, segs...), form...) {
			m := message(project, uuid.New(), i, workload.Gzip(events))
			attrs, err := segment.ParseAttributes(m.Attributes)
			if err != nil {
				t.Fatal(err)
			}
			_, decoded, ps, err := p.scanDecode(attrs, m.Data, nil)
			if err != nil || !bytes.Equal(decoded, events) {
				t.Fatalf("the pass decoded %d bytes, not the segment's %d: %v", len(decoded), len(events), err)
			}
			if ps.check == nil || ps.check != rs.ScrubCheck(project) {
				t.Fatal("the pass ran without the project's check")
			}
			if project == clean && i < len(segs) {
				for _, sp := range ps.spans {
					total++
					if sp.Clear {
						cleared++
					}
				}
			}
			want, err := rs.Apply(ctx, attrs.ID, 30, m.Attributes, decoded)
			if err != nil {
				t.Fatal(err)
			}
			got, err := rs.ApplySpans(ctx, attrs.ID, 30, m.Attributes, bytes.Clone(decoded), ps.spans, ps.check, true)
			if err != nil {
				t.Fatal(err)
			}
			if got.Decision != want.Decision || !bytes.Equal(got.Events, want.Events) || (got.Events == nil) != (want.Events == nil) {
				t.Errorf("project %d, segment %d: the verdict with the pass's spans differs from the rules' own reading", project, i)
			}
			ps.release()
		}
	}
	if total == 0 || cleared*10 < total*8 {
		t.Errorf("the pass cleared %d of %d events of a recording without personal data", cleared, total)
	}
}
