package rules_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

func newSet(t *testing.T, d *testenv.Deps) *rules.Set {
	t.Helper()
	e := rules.NewEngine(testLimits())
	t.Cleanup(e.Close)
	rs := rules.NewSet(e, d.DB, d.Blobs, 1<<20)
	if err := rs.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rs
}

func segID(project int64, replay uuid.UUID, seg int) segment.ID {
	return segment.ID{ProjectID: project, ReplayID: replay, SegmentID: seg, Type: segment.DefaultType}
}

// TestSamplingTenPercent: a 10% rule keeps 10% ± 1% of 10,000 replays,
// every segment of a replay gets the same decision (a kept replay is
// complete), and the attribute rules override the rate.
func TestSamplingTenPercent(t *testing.T) {
	d := testenv.NewDeps(t)
	hash := rulestest.Push(t, d.DB, d.Blobs, "sampling", rulestest.Build(t, "shared/rules/modules/sampling/wasm"))
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 1, Name: "sample", ModuleHash: hash, FailOpen: true,
		Config: []byte(`{"rate":0.1,"rules":[{"error":true,"rate":1},{"url_prefix":"https://shop.example/admin","rate":0}]}`)})
	rs := newSet(t, d)
	ctx := context.Background()
	events := []byte(`[{"type":3,"data":{"source":1},"timestamp":1700000000000}]`)
	decide := func(replay uuid.UUID, attrs map[string]string) bool {
		t.Helper()
		var kept []bool
		for seg := range 3 {
			v, err := rs.Apply(ctx, segID(1, replay, seg), 90, attrs, events)
			if err != nil {
				t.Fatal(err)
			}
			if len(v.FailedOpen) > 0 {
				t.Fatalf("sampling failed: %v", v.FailedOpen)
			}
			kept = append(kept, v.Decision == sdk.DecisionKeep)
		}
		if kept[0] != kept[1] || kept[1] != kept[2] {
			t.Fatalf("replay %s: segments decided %v", replay, kept)
		}
		return kept[0]
	}
	const n = 10_000
	keptN := 0
	for range n {
		if decide(uuid.New(), map[string]string{"url": "https://shop.example/checkout", "sdk": "sentry.javascript.browser"}) {
			keptN++
		}
	}
	if got := float64(keptN) / n; math.Abs(got-0.1) > 0.01 {
		t.Errorf("kept %d of %d replays (%.2f%%), want 10%% ± 1%%", keptN, n, 100*got)
	}
	for range 200 {
		if !decide(uuid.New(), map[string]string{"url": "https://shop.example/checkout", "error": "true"}) {
			t.Fatal("a replay with an error was dropped; the rule keeps all of them")
		}
		if decide(uuid.New(), map[string]string{"url": "https://shop.example/admin/users"}) {
			t.Fatal("an admin replay was kept; the rule drops all of them")
		}
	}
}

// TestDetect runs the detection module on a segment with a rage click, a
// dead click and a burst of console errors.
func TestDetect(t *testing.T) {
	d := testenv.NewDeps(t)
	hash := rulestest.Push(t, d.DB, d.Blobs, "detect", rulestest.Build(t, "shared/rules/modules/detect/wasm"))
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 1, Name: "detect", ModuleHash: hash, FailOpen: true})
	rs := newSet(t, d)

	ts := int64(1_700_000_000_000)
	var evs []string
	add := func(dt int64, format string, args ...any) {
		ts += dt
		evs = append(evs, fmt.Sprintf(format, args...)+fmt.Sprintf(`,"timestamp":%d}`, ts))
	}
	add(0, `{"type":4,"data":{"href":"https://shop.example/checkout?email=x@y.z"}`)
	add(10, `{"type":2,"data":{"node":{"type":0,"id":1,"childNodes":[{"type":2,"tagName":"button","attributes":{"id":"pay"},"childNodes":[],"id":14},{"type":2,"tagName":"div","attributes":{"class":"promo banner"},"childNodes":[],"id":20}]}}`)
	click := func(dt int64, id int) {
		add(dt, `{"type":3,"data":{"source":2,"type":2,"id":%d,"x":1,"y":1}`, id)
	}
	click(100, 14)
	add(50, `{"type":3,"data":{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[]}`)
	click(200, 14)
	click(200, 14) // third click on #pay within 1 s: rage
	add(50, `{"type":3,"data":{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[]}`)
	click(2000, 20) // nothing happens after this one: dead
	for i := range 5 {
		add(1000, `{"type":6,"data":{"plugin":"rrweb/console@1","payload":{"level":"error","payload":["\"TypeError: x is undefined at line %d\""]}}`, 100+i)
	}
	v, err := rs.Apply(context.Background(), segID(1, uuid.New(), 0), 90, nil, []byte("["+strings.Join(evs, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Decision != sdk.DecisionKeep || v.Events != nil || len(v.FailedOpen) > 0 {
		t.Fatalf("verdict %+v: detection must keep the segment unchanged", v)
	}
	want := []sdk.Fingerprint{
		{Kind: "rage_click", Levels: []string{"rage_click", "rage_click:/checkout", "rage_click:/checkout:button#pay"}},
		{Kind: "dead_click", Levels: []string{"dead_click", "dead_click:/checkout", "dead_click:/checkout:div.promo"}},
		{Kind: "console_error_burst", Levels: []string{"console_error_burst", "console_error_burst:/checkout", "console_error_burst:/checkout:TypeError: x is undefined at line 000"}},
	}
	if diff := cmp.Diff(want, v.Fingerprints); diff != "" {
		t.Errorf("fingerprints (-want +got):\n%s", diff)
	}
	if len(v.Tags) != 3 || v.Tags[0] != (sdk.Tag{Key: "issue", Value: "rage_click"}) {
		t.Errorf("tags = %v", v.Tags)
	}
}

// TestProjectsRulesNeverMix: a project's rules run only on its segments;
// a missing module fails its own project's assignment (closed) and nobody
// else's.
func TestProjectsRulesNeverMix(t *testing.T) {
	d := testenv.NewDeps(t)
	echo := rulestest.Push(t, d.DB, d.Blobs, "echo", rulestest.Build(t, "shared/rules/testdata/echo"))
	missing := strings.Repeat("ab", 32)
	if err := d.DB.PutRuleModule(context.Background(), store.RuleModule{Hash: missing, Name: "gone", Size: 1}); err != nil {
		t.Fatal(err)
	}
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 1, Name: "echo", ModuleHash: echo, Config: []byte(`{"p":1}`)})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 2, Name: "echo", ModuleHash: echo, Config: []byte(`{"p":2}`)})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 3, Name: "broken", ModuleHash: missing})
	rs := newSet(t, d)
	ctx := context.Background()
	for _, project := range []int64{1, 2, 1, 2} {
		v, err := rs.Apply(ctx, segID(project, uuid.New(), 0), 90, nil, []byte("[]"))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, tag := range v.Tags {
			got[tag.Key] = tag.Value
		}
		if got["project"] != fmt.Sprint(project) || got["config"] != fmt.Sprintf(`{"p": %d}`, project) && got["config"] != fmt.Sprintf(`{"p":%d}`, project) {
			t.Fatalf("project %d saw %v", project, got)
		}
	}
	v, err := rs.Apply(ctx, segID(3, uuid.New(), 0), 90, nil, []byte("[]"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Decision != sdk.DecisionReject || v.Reason != "rule_failed:broken:load" {
		t.Fatalf("project 3 with a missing module: %+v", v)
	}
	v, err = rs.Apply(ctx, segID(4, uuid.New(), 0), 90, nil, []byte("[]"))
	if err != nil || v.Decision != sdk.DecisionKeep || len(v.Tags) > 0 {
		t.Fatalf("project 4 without rules: %+v, %v", v, err)
	}
}
