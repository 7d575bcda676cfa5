package packer

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/derive"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// devtoolsSegment is a segment of console errors and network requests that
// carry p's e-mail address and card number (a failed payment logged with
// the data the user typed): a burst of errors makes a console_errors
// issue, and every event belongs to the console or network slice.
func devtoolsSegment(p workload.PII, startMS int64) []byte {
	var ev []string
	for i := range 4 {
		ev = append(ev, fmt.Sprintf(`{"type":6,"data":{"plugin":"rrweb/console@1","payload":{"level":"error","payload":[%q],"trace":[]}},"timestamp":%d}`,
			fmt.Sprintf(`"payment failed for %s with card %s"`, p.Email, p.Card), startMS+int64(i)*100))
		ev = append(ev, fmt.Sprintf(`{"type":6,"data":{"plugin":"rrweb/network@1","payload":{"requests":[{"method":"POST","name":"https://shop.example/api/pay?email=%s","status":402,"startTime":1,"endTime":40}]}},"timestamp":%d}`,
			p.Email, startMS+int64(i)*100+50))
	}
	ev = append(ev, fmt.Sprintf(`{"type":5,"data":{"tag":"breadcrumb","payload":{"category":"console","message":"card %s declined"}},"timestamp":%d}`, p.Card, startMS+500))
	return []byte("[" + strings.Join(ev, ",") + "]")
}

// TestScrubbedSlicesAndIssues: with the PII scrub (a ModeStrings rule,
// whose masks keep every event where it was), the console and network
// slices and the issues Pack derives carry the masked text, never what
// was typed: they are exactly what a fresh scan of the stored events
// gives, although Pack takes them from its one validating pass, whether
// the scrub rewrote the segment (projects 7 and 9) or left it as it came
// (9, on the real-shaped segments). Without the rule the same segments'
// slices and issues do hold the secrets, so the check can fail.
func TestScrubbedSlicesAndIssues(t *testing.T) {
	d := testenv.NewDeps(t)
	scrub := pushScrub(t, d)
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 7, Name: "scrub", ModuleHash: scrub})
	// Project 9's scrub masks by pattern only: it leaves the real-shaped
	// segments as they came (slices and issues then come from the
	// decoded payload).
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 9, Name: "scrub", ModuleHash: scrub, Config: []byte(`{"mask_all_inputs":false}`)})
	cfg := testConfig()
	cfg.DeriveSlices = true
	p := newPacker(t, d, cfg, nil)
	p.UseRules(newRuleSet(t, d))
	ctx := context.Background()

	pii := workload.DefaultPII()
	const start = 1_700_000_000_000
	segs := workload.FormSession(pii, start)
	segs = append(segs, devtoolsSegment(pii, start+60_000))
	rng := mrand.New(mrand.NewPCG(7, 8))
	segs = append(segs, workload.Recording(rng, 2, 16<<10, 8<<10, start+120_000)...)
	secrets := pii.Secrets()
	leaks := func(what string, b []byte) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %q", what, s)
			}
		}
	}
	issuesText := func(occs []store.Occurrence) []byte {
		var b []byte
		for _, o := range occs {
			b = append(b, o.Title...)
			b = append(b, o.Details...)
		}
		return b
	}

	replay := uuid.New()
	var slices, issues int
	for i, raw := range segs {
		for _, project := range []int64{7, 8, 9} { // 8 has no rules
			m := message(project, replay, i, workload.Gzip(raw))
			v, err := p.validate(ctx, m)
			if err != nil {
				t.Fatalf("segment %d of project %d: %v", i, project, err)
			}
			stored, err := segment.Decode(v.enc, v.stored, 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			// The reference: a fresh scan of the stored events.
			info, ref, err := p.scan(v.attrs, stored, false)
			if err != nil {
				t.Fatal(err)
			}
			var refSlices []derive.Slice
			if ref.slicer != nil {
				refSlices = ref.slicer.Slices()
			}
			refIssues := p.detectIssues(ctx, v.attrs.ID, info, ref.issues)
			if !reflect.DeepEqual(v.slices, refSlices) {
				t.Errorf("segment %d of project %d: slices differ from a scan of the stored events:\n%+v\n%+v", i, project, v.slices, refSlices)
			}
			if !reflect.DeepEqual(v.issues, refIssues) {
				t.Errorf("segment %d of project %d: issues differ from a scan of the stored events:\n%+v\n%+v", i, project, v.issues, refIssues)
			}
			var sliceText []byte
			for _, sl := range v.slices {
				sliceText = append(sliceText, sl.JSON...)
			}
			if project == 8 {
				if i == 3 && (!strings.Contains(string(sliceText), pii.Email) || !strings.Contains(string(issuesText(v.issues)), pii.Email)) {
					t.Errorf("without the scrub, the devtools segment's slices or issues lack the address: the check below could not fail")
				}
				continue
			}
			what := fmt.Sprintf("segment %d", i)
			leaks(what, stored)
			leaks(what+"'s slices", sliceText)
			leaks(what+"'s issues", issuesText(v.issues))
			slices += len(v.slices)
			issues += len(v.issues)
			if i == 3 && !strings.Contains(string(sliceText), "payment failed for ") {
				t.Errorf("the console slice lost the unmasked text around the secrets: %s", sliceText)
			}
		}
	}
	if slices < 3 || issues < 1 {
		t.Errorf("%d slices and %d issues from the scrubbed segments; want the devtools segment's console, network and timeline slices and its console_errors issue", slices, issues)
	}

	// Through Ingest: no stored byte, recording or slice, holds a secret.
	for i, raw := range segs {
		if res, err := p.Ingest(ctx, message(7, replay, i, workload.Gzip(raw))); err != nil || res != Stored {
			t.Fatalf("Ingest %d = %s, %v", i, res, err)
		}
	}
	for _, r := range rows(t, d) {
		pt, err := open(ctx, d, d.KEKCache(), r)
		if err != nil {
			t.Fatal(err)
		}
		leaks(fmt.Sprintf("stored %s %d", r.typ, r.segID), pt)
	}
}

// TestScrubbedManyEvents: a segment of more events than Pack notes in its
// validating pass (maxHeld), with the secrets in a console error at its
// end, is scanned again after the scrub: its slices and issues still
// carry only the masked text, and the events Pack holds stay bounded.
func TestScrubbedManyEvents(t *testing.T) {
	d := testenv.NewDeps(t)
	scrub := pushScrub(t, d)
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 7, Name: "scrub", ModuleHash: scrub})
	cfg := testConfig()
	cfg.DeriveSlices = true
	p := newPacker(t, d, cfg, nil)
	p.UseRules(newRuleSet(t, d))
	pii := workload.DefaultPII()
	const start = 1_700_000_000_000
	var b strings.Builder
	b.WriteString("[")
	for i := range maxHeld + 10 {
		fmt.Fprintf(&b, `{"type":3,"data":{"source":1},"timestamp":%d},`, start+int64(i))
	}
	devtools := devtoolsSegment(pii, start+maxHeld+100)
	b.Write(devtools[1:])
	raw := []byte(b.String())

	m := message(7, uuid.New(), 0, workload.Gzip(raw))
	attrs, err := segment.ParseAttributes(m.Attributes)
	if err != nil {
		t.Fatal(err)
	}
	_, held, err := p.scan(attrs, raw, true)
	if err != nil {
		t.Fatal(err)
	}
	if !held.over || len(held.held) != maxHeld {
		t.Errorf("held %d events (over: %v), want %d and over", len(held.held), held.over, maxHeld)
	}
	held.release()

	v, err := p.validate(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	var text []byte
	for _, sl := range v.slices {
		text = append(text, sl.JSON...)
	}
	if !strings.Contains(string(text), "payment failed for ") {
		t.Errorf("no console slice: %d slices", len(v.slices))
	}
	for _, o := range v.issues {
		text = append(text, o.Title...)
		text = append(text, o.Details...)
	}
	stored, err := segment.Decode(v.enc, v.stored, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	text = append(text, stored...)
	for _, sec := range pii.Secrets() {
		if strings.Contains(string(text), sec) {
			t.Errorf("stored segment, slices or issues hold %q", sec)
		}
	}
}
