package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/replayvault/replayvault/shared/rules/modules/piiscrub"
	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// foldWants are the rule sets the fold is checked under: the scrub's
// configs, wants the scrub does not use (Inputs, Attributes, several
// digit lengths), and unions of two rules.
var foldWants = [][]sdk.Wants{
	{piiscrub.Describe(nil)},
	{piiscrub.Describe([]byte(`{"mask_all_inputs":false}`))},
	{piiscrub.Describe([]byte(`{"mask_all_inputs":false,"attributes":["title"]}`))},
	{piiscrub.Describe([]byte(`{"patterns":["email"],"mask_all_inputs":false,"attributes":[]}`))},
	{piiscrub.Describe([]byte(`{"patterns":["phone"],"mask_all_inputs":false,"attributes":["Placeholder"]}`))},
	{{Mode: sdk.ModeStrings, Inputs: true}},
	{{Mode: sdk.ModeStrings, MinDigits: 3, Attributes: []string{"class"}}},
	{{Mode: sdk.ModeStrings}},
	{{Mode: sdk.ModeStrings, MinDigits: 12}, {Mode: sdk.ModeStrings, MinDigits: 4, AtSign: true}},
	{{Mode: sdk.ModeStrings, MaskAttributes: []string{"data-x"}}, {Mode: sdk.ModeEvents}, {Mode: sdk.ModeStrings, Inputs: true}},
	{{Mode: sdk.ModeStrings, AtSign: true}, {Mode: sdk.ModeStrings, MinDigits: 9}},
}

// foldEvent writes one random event: mostly rrweb's shape (type, data,
// timestamp, in any order, any spacing), sometimes other members, with
// data a random tree of the keys and strings the pre-filter treats apart,
// escapes, numbers with fractions, and "attributes" objects of scalars or
// not. A clean event has no escape and no number with a fraction, which
// the pass leaves to the general code and so marks whatever they hold,
// and few blanks: in a clean event each check of the pass decides alone.
func foldEvent(rng *rand.Rand, b *strings.Builder, clean bool) {
	keys := []string{"text", "value", "Value", "VALUE", "attributes", "attributes", "attributes", "class", "data", "texts", "tex", "id", "tagName", "placeholder", "Placeholder", "title", "data-x", "x", "childNodes", "@key", "12345678901", `te\u0078t`, `a\"b`}
	strs := []string{"plain words", "jane@example.com", "4242 4242 4242 4242", "+1 (415) 555-0134", "12345678", "123", "1234", "12-34 56", "", "}", "{[", "attributes", "text", "a long string of words without any digit in it at all", "ünïcødé 1 2 3 4 5 6 7 8 9 0",
		`say \"hi\"`, `\\`, `\":x`, `a\"@`, `x\\`, `\u0040`, `tab\there`, `card \"4242 4242 4242 4242\"`, `\/+1 (415) 555-0134`}
	nums := []string{"1", "0", "-7", "1700000000000", "true", "false", "null", "-2.5e3", "0.25", "1E9"}
	if clean {
		keys, strs, nums = keys[:len(keys)-2], strs[:15], nums[:7]
	}
	ws := func() string {
		if clean && rng.IntN(10) > 0 {
			return "" // the pass leaves a blank after a comma to the general code
		}
		return []string{"", "", "", " ", "\n\t", " \r\n "}[rng.IntN(6)]
	}
	var value func(depth int)
	object := func(depth int) {
		b.WriteString("{" + ws())
		for k := range rng.IntN(5) {
			if k > 0 {
				b.WriteString(ws() + "," + ws())
			}
			key := keys[rng.IntN(len(keys))]
			b.WriteString(`"` + key + `"` + ws() + ":" + ws())
			if key == "attributes" && rng.IntN(3) > 0 {
				b.WriteString("{" + ws())
				for a := range rng.IntN(4) {
					if a > 0 {
						b.WriteString(",")
					}
					b.WriteString(`"` + keys[rng.IntN(len(keys))] + `"` + ws() + ":" + ws())
					switch rng.IntN(8) {
					case 0:
						value(depth + 2) // not rrweb's
					case 1:
						b.WriteString(nums[rng.IntN(len(nums))])
					default:
						b.WriteString(`"` + strs[rng.IntN(len(strs))] + `"`)
					}
				}
				b.WriteString(ws() + "}")
				continue
			}
			value(depth + 1)
		}
		b.WriteString(ws() + "}")
	}
	value = func(depth int) {
		switch k := rng.IntN(10); {
		case depth < 7 && k < 3:
			object(depth)
		case depth < 7 && k < 4:
			b.WriteString("[" + ws())
			for n := range rng.IntN(4) {
				if n > 0 {
					b.WriteString(ws() + "," + ws())
				}
				value(depth + 1)
			}
			b.WriteString(ws() + "]")
		case k < 8:
			b.WriteString(`"` + strs[rng.IntN(len(strs))] + `"`)
		default:
			b.WriteString(nums[rng.IntN(len(nums))])
		}
	}
	members := []func(){
		func() { b.WriteString(`"type"` + ws() + ":" + ws() + fmt.Sprint(rng.IntN(7))) },
		func() { b.WriteString(`"timestamp":` + fmt.Sprint(1_700_000_000_000+rng.IntN(1000))) },
		func() {
			b.WriteString(`"data"` + ws() + ":" + ws())
			if rng.IntN(10) == 0 {
				value(2)
			} else {
				object(2)
			}
		},
	}
	if rng.IntN(8) == 0 { // another member, not rrweb's
		members = append(members, func() {
			b.WriteString(`"` + keys[rng.IntN(len(keys))] + `":`)
			value(2)
		})
	}
	rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	b.WriteString("{" + ws())
	for k, m := range members {
		if k > 0 {
			b.WriteString("," + ws())
		}
		m()
	}
	b.WriteString(ws() + "}")
}

// foldPass validates events with the check for bs and returns the spans
// the pass noted, Clear and NoTags set as Pack sets them.
func foldPass(t testing.TB, events []byte, check *segment.ScrubCheck) []Span {
	t.Helper()
	var spans []Span
	hook := &segment.EventHook{Scrub: check, OnEvent: func(m segment.EventMeta) {
		spans = append(spans, Span{Start: m.Start, End: m.End, Clear: !m.MayScrub, NoTags: !m.TagName})
	}}
	if _, err := segment.ValidateEvents(events, segment.Limits{}, hook); err != nil {
		t.Fatalf("validate: %v: %s", err, events)
	}
	return spans
}

func boundsOf(ws []sdk.Wants) []*bound {
	var bs []*bound
	for _, w := range ws {
		bs = append(bs, &bound{wants: compileWants(w)})
	}
	return bs
}

// TestScrubCheckMarksWhatMayEditFlags: the validating pass, with the
// ScrubCheck of a project's strings-mode rules, marks every event that
// eventMayEdit flags for any of those rules, on many random rrweb-like
// arrays and on real-shaped recordings; the walk that passes over the
// events it cleared builds the same table as the walk of every event; and
// it clears most events of a recording without personal data (else it
// would save nothing).
func TestScrubCheckMarksWhatMayEditFlags(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var docs [][]byte
	for range 6_000 {
		var b strings.Builder
		b.WriteString("[")
		for n := range 1 + rng.IntN(4) {
			if n > 0 {
				b.WriteString(",\n"[:1+rng.IntN(2)])
			}
			foldEvent(rng, &b, len(docs)%2 == 0)
		}
		b.WriteString("]")
		events := []byte(b.String())
		if !json.Valid(events) {
			t.Fatalf("generated invalid JSON: %s", events)
		}
		docs = append(docs, events)
	}
	recording := workload.Recording(rand.New(rand.NewPCG(1, 2)), 3, 30<<10, 30<<10, 1_700_000_000_000)
	docs = append(docs, recording...)
	docs = append(docs, workload.FormSession(workload.DefaultPII(), 1_700_000_000_000)...)
	for range 20 {
		docs = append(docs, workload.Segment(rng, 1, 1_700_000_000_000, 30<<10))
	}
	for range 3 { // events across the pass's decompressed chunks
		docs = append(docs, workload.Segment(rng, 1, 1_700_000_000_000, 300<<10))
	}

	var flagged, cleared, tables, noTags int
	for _, ws := range foldWants {
		bs := boundsOf(ws)
		check := scrubCheck(bs)
		if check == nil {
			t.Fatalf("no check for %+v", ws)
		}
		for _, events := range docs {
			spans := foldPass(t, events, check)
			if !spansCover(events, spans) {
				t.Fatalf("the pass's spans do not cover the events: %v: %s", spans, events)
			}
			var chunked []Span // the pass over compressed events, in chunks
			if len(events) > 64<<10 {
				chunked = foldPass(t, segment.CompressLevel(events, segment.LevelFastest), check)
				if len(chunked) != len(spans) {
					t.Fatalf("%d events in chunks, %d in one", len(chunked), len(spans))
				}
			}
			for _, b := range bs {
				w := b.wants
				if w.Mode != sdk.ModeStrings {
					continue
				}
				for k, sp := range spans {
					ev := events[sp.Start:sp.End]
					if !eventMayEdit(ev, w) {
						continue
					}
					flagged++
					if sp.Clear {
						t.Fatalf("wants %+v: the pass cleared an event the pre-filter flags: %s", w.Wants, ev)
					}
					if chunked != nil && chunked[k].Clear {
						t.Fatalf("wants %+v: the pass over the compressed events cleared an event the pre-filter flags: %s", w.Wants, ev)
					}
				}
				if allClear(spans) && mayEdit(events, w) {
					t.Fatalf("wants %+v: the pass cleared every event; the pre-filter flags the array: %s", w.Wants, events)
				}
				if len(events) < 4<<10 || tables < 2000 {
					// The walk that trusts the pass builds the table the
					// walk of every event builds.
					all, err := buildTable(events, w, nil)
					if err != nil {
						t.Fatal(err)
					}
					got, err := buildTableSpans(events, w, nil, spans, true)
					if err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(got.t.Strings, got.t.at, got.masks) != fmt.Sprint(all.t.Strings, all.t.at, all.masks) {
						t.Fatalf("wants %+v: the walk over the cleared events builds another table: %s", w.Wants, events)
					}
					putWalker(all)
					putWalker(got)
					tables++
				}
			}
			for _, sp := range spans {
				if sp.Clear {
					cleared++
				}
				// No generated string value is "tagName": every one found
				// is a key the walk would take a tag from.
				if sp.Clear && sp.NoTags && bytes.Contains(events[sp.Start:sp.End], keyTagName) {
					t.Fatalf("the pass saw no tagName key in an event that has one: %s", events[sp.Start:sp.End])
				}
				if sp.NoTags {
					noTags++
				}
			}
		}
	}
	if flagged < 10_000 || cleared < 10_000 || noTags < 10_000 {
		t.Errorf("the pre-filter flagged %d events and the pass cleared %d (%d without tags): the test checks little", flagged, cleared, noTags)
	}

	// A recording without personal data: the pass clears most events.
	clean := scrubCheck(boundsOf([]sdk.Wants{piiscrub.Describe([]byte(`{"mask_all_inputs":false}`))}))
	var n, c int
	for _, seg := range recording {
		for _, sp := range foldPass(t, seg, clean) {
			n++
			if sp.Clear {
				c++
			}
		}
	}
	if c*10 < n*8 {
		t.Errorf("the pass cleared %d of %d events of a recording without personal data", c, n)
	}
	t.Logf("flagged %d, cleared %d (%d without tags), tables %d; recording: %d of %d cleared", flagged, cleared, noTags, tables, c, n)
}

// TestClearedEventsKeepTheirTags: an event the pass cleared that names a
// node's tag is still read for it when a later event changes an attribute
// of that node by id only (the scrub masks an input's value by its tag),
// and one that names none is not. The pass tells which (Span.NoTags).
func TestClearedEventsKeepTheirTags(t *testing.T) {
	events := []byte(`[{"type":2,"data":{"node":{"type":2,"tagName":"input","attributes":{"type":"text","name":"who"},"childNodes":[],"id":9}},"timestamp":1700000000000},` +
		`{"type":3,"data":{"source":1,"positions":[{"x":1,"y":2,"id":9,"timeOffset":0}]},"timestamp":1700000000001},` +
		`{"type":3,"data":{"source":0,"texts":[],"attributes":[{"id":9,"attributes":{"value":"Jane Roe"}}],"removes":[],"adds":[]},"timestamp":1700000000002}]`)
	// Masks every input's value, which a "value" attribute is only on an
	// input element.
	w := piiscrub.Describe([]byte(`{"attributes":[]}`))
	bs := boundsOf([]sdk.Wants{w})
	spans := foldPass(t, events, scrubCheck(bs))
	if len(spans) != 3 {
		t.Fatalf("%d spans", len(spans))
	}
	if !spans[0].Clear || spans[0].NoTags || !spans[1].Clear || !spans[1].NoTags || spans[2].Clear {
		t.Fatalf("spans %+v: want the snapshot cleared with tags, the move cleared without, the mutation marked", spans)
	}
	masks := func(spans []Span) string {
		wk, err := buildTableSpans(events, bs[0].wants, nil, spans, true)
		if err != nil {
			t.Fatal(err)
		}
		defer putWalker(wk)
		return fmt.Sprint(wk.masks)
	}
	all, err := buildTable(events, bs[0].wants, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(all.masks)
	putWalker(all)
	if want == "[]" {
		t.Fatal("the walk of every event masks nothing: the test checks nothing")
	}
	if got := masks(spans); got != want {
		t.Errorf("masks %s with the pass's spans, %s reading every event", got, want)
	}
	// Were the snapshot said to name no tag, the value would stay.
	wrong := slices.Clone(spans)
	wrong[0].NoTags = true
	if got := masks(wrong); got == want {
		t.Errorf("the walk took the tag from an event said to have none: NoTags is not read")
	}
}
