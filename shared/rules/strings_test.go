package rules

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/replayvault/replayvault/shared/rules/modules/piiscrub"
	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/workload"
)

// scrubStrings runs the scrub rule natively the way Pack runs a ModeStrings
// module: describe, walk, table through its wire format, edits through
// theirs, splice.
func scrubStrings(t *testing.T, config string, events []byte) (out []byte, sent, masked int) {
	t.Helper()
	w := piiscrub.Describe([]byte(config))
	if w.Mode != sdk.ModeStrings {
		t.Fatalf("describe(%s) = %+v", config, w)
	}
	wk, err := buildTable(events, compileWants(w), []byte(config))
	if err != nil {
		t.Fatal(err)
	}
	defer putWalker(wk)
	if !mayEdit(events, compileWants(w)) && (len(wk.t.Strings) > 0 || len(wk.masks) > 0) {
		t.Errorf("config %s: the pre-filter passed over events whose walk found %d strings and %d masks: %s", config, len(wk.t.Strings), len(wk.masks)/2, events)
	}
	sameTable(t, "config "+config, events, compileWants(w), wk)
	var table sdk.Table
	if err := sdk.DecodeTable(sdk.AppendTable(nil, &wk.t.Table), &table); err != nil {
		t.Fatal(err)
	}
	edits, err := piiscrub.Strings(&table)
	if err != nil {
		t.Fatal(err)
	}
	edits, err = sdk.DecodeEdits(sdk.AppendEdits(nil, edits), len(wk.t.Strings))
	if err != nil {
		t.Fatal(err)
	}
	out, same, err := wk.splice(events, edits, false)
	if err != nil {
		t.Fatal(err)
	}
	if !same || len(out) != len(events) {
		t.Errorf("the scrub's splice moved bytes: same %v, %d bytes for %d", same, len(out), len(events))
	}
	// In place (ApplySpans, Pack's), the same bytes.
	own := bytes.Clone(events)
	if got, same, err := wk.splice(own, edits, true); err != nil || !same || !bytes.Equal(got, out) || &got[0] != &own[0] {
		t.Errorf("config %s: the splice in place differs (same %v, %v) or copied", config, same, err)
	}
	return out, len(wk.t.Strings), len(wk.masks) / 2
}

// TestStringsModeMatchesEvents: the scrub module in ModeStrings (Pack walks
// the events, the module sees only candidate strings) stores exactly what
// the same rule stores when it gets the whole events, on the checkout
// recording, generated segments and the escape and selector edge cases,
// with and without selectors.
func TestStringsModeMatchesEvents(t *testing.T) {
	var inputs [][]byte
	inputs = append(inputs, workload.FormSession(workload.DefaultPII(), 1_700_000_000_000)...)
	rng := rand.New(rand.NewPCG(5, 6))
	inputs = append(inputs, workload.Segment(rng, 0, 1_700_000_000_000, 20<<10), workload.Segment(rng, 1, 1_700_000_000_000, 20<<10))
	inputs = append(inputs, workload.Recording(rng, 3, 8<<10, 16<<10, 1_700_000_000_000)...)
	inputs = append(inputs,
		[]byte(`[{"type":3,"data":{"source":0,"texts":[{"id":1,"value":"say \"hi\" to jane@example.com\n4242 4242 4242 4242 \u00e9"}]},"timestamp":1}]`),
		[]byte(`[{"type":3,"data":{"source":5,"text":"a\\b\"c","id":7},"timestamp":1}]`),
		[]byte(`[{"type":2,"data":{"node":{"type":2,"tagName":"div","attributes":{"class":"x pii","value":"v1"},"childNodes":[{"type":3,"textContent":"Jane","id":3}],"id":2}}},{"type":3,"data":{"source":0,"texts":[{"id":3,"value":"Joan"}],"adds":[{"parentId":2,"node":{"type":3,"textContent":"Jim","id":4}}]}}]`),
		[]byte(` [ {"type":3 , "data" : {"source":0,"attributes":[{"id":9,"attributes":{"Value":"x","title":"mail a@b.example"}}],"plugin":["call 415 555 0134",{"k":"4242424242424242"}]},"timestamp":"1700000000000"} ] `),
		// The tag of node 9, which decides whether its value is an input
		// value, comes from an event with nothing to mask in itself.
		[]byte(`[{"type":2,"data":{"node":{"type":2,"tagName":"input","attributes":{"type":"email"},"childNodes":[],"id":9}},"timestamp":1},{"type":3,"data":{"source":1,"positions":[{"x":1,"y":2,"id":9,"timeOffset":0}]},"timestamp":2},{"type":3,"data":{"source":0,"texts":[],"attributes":[{"id":9,"attributes":{"value":"typed text"}}],"removes":[],"adds":[]},"timestamp":3}]`),
	)
	for _, config := range []string{`null`, `{"attributes":[]}`, `{"selectors":[".pii"]}`, `{"selectors":["input[type=email]","#status"],"mask_all_inputs":false,"attributes":["title"]}`, `{"patterns":["email"],"mask_all_inputs":false,"attributes":[]}`} {
		for i, events := range inputs {
			want, err := piiscrub.Func(&sdk.Input{Header: sdk.Header{Config: []byte(config)}, Events: events})
			if err != nil {
				t.Fatal(err)
			}
			wantEvents := events
			if want.Rewritten {
				wantEvents = want.Events
			}
			got, _, _ := scrubStrings(t, config, events)
			if !bytes.Equal(got, wantEvents) {
				t.Errorf("config %s, input %d:\n strings mode %s\n events mode  %s", config, i, got, wantEvents)
			}
			if !json.Valid(got) {
				t.Errorf("config %s, input %d: invalid JSON out", config, i)
			}
		}
	}
}

// TestStringsModeSendsFew: on a segment of mouse moves and text mutations
// without personal data (the bulk of a recording), the module is handed
// almost nothing; input values are all handed over under mask_all_inputs.
func TestStringsModeSendsFew(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 200 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"type":3,"data":{"source":1,"positions":[{"x":10,"y":20,"id":5,"timeOffset":0}]},"timestamp":1700000000000},`)
		b.WriteString(`{"type":3,"data":{"source":0,"texts":[{"id":8,"value":"Order 12345 shipped at 10:30 to Paris"}],"attributes":[],"removes":[],"adds":[]},"timestamp":1700000000050}`)
	}
	b.WriteString("]")
	events := []byte(b.String())
	out, n, masked := scrubStrings(t, `null`, events)
	if n != 0 || masked != 0 || !bytes.Equal(out, events) {
		t.Errorf("%d strings handed over, %d masked for a segment without candidates", n, masked)
	}
	inputs := []byte(`[{"type":3,"data":{"source":5,"text":"hello","id":7},"timestamp":1},{"type":3,"data":{"source":5,"text":"mail jane@example.com","id":7},"timestamp":2}]`)
	if _, n, masked := scrubStrings(t, `null`, inputs); n != 0 || masked != 2 {
		t.Errorf("mask_all_inputs: %d input values handed over, %d masked by Pack; want 0 and 2", n, masked)
	}
	if _, n, masked := scrubStrings(t, `{"mask_all_inputs":false}`, inputs); n != 1 || masked != 0 {
		t.Errorf("without mask_all_inputs: %d input values handed over, %d masked by Pack; want 1 (the address) and 0", n, masked)
	}
}

// TestSpliceRefusesBadReplacements: a module's replacement must be JSON
// string content, so that no edit can change the events' structure.
func TestSpliceRefusesBadReplacements(t *testing.T) {
	events := []byte(`[{"type":3,"data":{"text":"jane@example.com"},"timestamp":1}]`)
	wk, err := buildTable(events, compileWants(sdk.Wants{Mode: sdk.ModeStrings, AtSign: true}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer putWalker(wk)
	if len(wk.t.Strings) != 1 {
		t.Fatalf("%d strings, want 1", len(wk.t.Strings))
	}
	orig := bytes.Clone(events)
	for _, bad := range []string{`x","type":2,"y":"`, "a\nb", `a\`, `\x41`, `\u12`, `\u12g4`, `aaaaaaaaaaaaaa\q`, `aaaaaaaaaaaaa","`} {
		for _, inPlace := range []bool{false, true} {
			if _, _, err := wk.splice(events, []sdk.Edit{{Index: 0, Op: sdk.OpReplace, Value: []byte(bad)}}, inPlace); err == nil {
				t.Errorf("replacement %q accepted (in place %v)", bad, inPlace)
			}
			if !bytes.Equal(events, orig) {
				t.Fatalf("refused replacement %q (in place %v) changed the events", bad, inPlace)
			}
		}
	}
	for _, good := range []string{``, `****`, `a\"b\\c\/\u00e9\n`, `****************`} {
		for _, inPlace := range []bool{false, true} {
			events := bytes.Clone(orig)
			out, same, err := wk.splice(events, []sdk.Edit{{Index: 0, Op: sdk.OpReplace, Value: []byte(good)}}, inPlace)
			if err != nil || !json.Valid(out) || !strings.Contains(string(out), `"text":"`+good+`"`) {
				t.Errorf("replacement %q (in place %v): %v, valid %v: %s", good, inPlace, err, json.Valid(out), out)
			}
			if want := len(good) == len("jane@example.com"); same != want {
				t.Errorf("replacement %q: same offsets %v, want %v", good, same, want)
			}
		}
	}
	// Edits out of order or range never reach splice.
	for _, edits := range [][]sdk.Edit{{{Index: 1, Op: sdk.OpMask}}, {{Index: 0, Op: sdk.OpMask}, {Index: 0, Op: sdk.OpMask}}, {{Index: 0, Op: 9}}} {
		if _, err := sdk.DecodeEdits(sdk.AppendEdits(nil, edits), 1); err == nil {
			t.Errorf("edits %+v accepted", edits)
		}
	}
}

// BenchmarkWalk is Pack's side of a ModeStrings call on about 30 KB of
// rrweb events: the walk that builds the scrub's table, and the splice.
func BenchmarkWalk(b *testing.B) {
	events := workload.Segment(rand.New(rand.NewPCG(1, 2)), 1, 1_700_000_000_000, 30<<10)
	w := compileWants(piiscrub.Describe(nil))
	b.SetBytes(int64(len(events)))
	b.ReportAllocs()
	for b.Loop() {
		wk, err := buildTable(events, w, nil)
		if err != nil {
			b.Fatal(err)
		}
		putWalker(wk)
	}
}

// TestWalkRefusesMalformed: the walk errs (the rule then fails by its fail
// mode) on what Pack's validation would have refused, and never nests
// past its limit.
func TestWalkRefusesMalformed(t *testing.T) {
	w := compileWants(sdk.Wants{Mode: sdk.ModeStrings, AtSign: true, Nodes: true})
	for _, bad := range []string{``, `[`, `{"a":1}`, `[{"a":}]`, `["x]`, `[1] 2`, `[{"a" 1}]`, strings.Repeat("[", 5000) + strings.Repeat("]", 5000), `[` + strings.Repeat(`{"a":`, 3000) + `1` + strings.Repeat("}", 3000) + `]`} {
		if wk, err := buildTable([]byte(bad), w, nil); err == nil {
			putWalker(wk)
			t.Errorf("walk of %.40q succeeded", bad)
		}
	}
}

// TestWordScans: the walk's word-at-a-time scans (digit runs, the end of
// a string) agree with byte-by-byte ones on random text made of the bytes
// they tell apart, at every alignment.
func TestWordScans(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	alphabet := []byte("0123456789 -.()+*,/:a\\\"\x80\xff@")
	for n := range 20_000 {
		b := make([]byte, rng.IntN(100))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
			if rng.IntN(3) > 0 {
				b[i] = alphabet[rng.IntN(10)] // mostly digits, so runs get long
			}
		}
		for min := 9; min <= 19; min++ {
			if got, want := digitRunWords(b, min), digitRunBytes(b, min, 0); got != want {
				t.Fatalf("digit run of %d in %q: %v, want %v", min, b, got, want)
			}
		}
		wk := &walker{b: b}
		start := min(n%4, len(b))
		wantQ := bytes.IndexByte(b[start:], '"')
		if wantQ >= 0 {
			wantQ += start
		}
		if got := nextQuote(b, start); got != wantQ {
			t.Fatalf("next quote in %q from %d: %d, want %d", b, start, got, wantQ)
		}
		if hasAt(b) != bytes.Contains(b, []byte("@")) {
			t.Fatalf("hasAt(%q) = %v", b, hasAt(b))
		}
		got, err := wk.str(start)
		want := start
		for want < len(b) && b[want] != '"' {
			if b[want] == '\\' {
				want++
			}
			want++
		}
		if want >= len(b) {
			if err == nil {
				t.Fatalf("string of %q from %d: end %d, want unterminated", b, start, got)
			}
		} else if err != nil || got != want {
			t.Fatalf("string of %q from %d: end %d (%v), want %d", b, start, got, err, want)
		}
	}
}

// splitEvents returns the top-level events of a JSON array.
func splitEvents(t testing.TB, events []byte) [][]byte {
	var out [][]byte
	for _, sp := range spansOf(t, events) {
		out = append(out, events[sp.Start:sp.End])
	}
	return out
}

// TestMayEditPassesOverNothingItNeeds: when the pre-filter says a scrub
// could edit nothing, the walk finds nothing either: on random rrweb-like
// JSON of keys the walk treats apart (text, value, attributes, tagName,
// placeholder...) and strings with and without addresses, digit runs and
// escapes, under four configs. It does pass over a real-shaped recording
// without personal data (no input masking), and not over the checkout
// recording.
func TestMayEditPassesOverNothingItNeeds(t *testing.T) {
	configs := []string{`null`, `{"mask_all_inputs":false}`, `{"mask_all_inputs":false,"attributes":["title"]}`, `{"patterns":["email"],"mask_all_inputs":false,"attributes":[]}`}
	rng := rand.New(rand.NewPCG(11, 12))
	keys := []string{"text", "value", "Value", "attributes", "attributes", "class", "data", "texts", "id", "tagName", "placeholder", "Placeholder", "title", "x", `te\u0078t`, `a\"b`}
	strs := []string{"plain words", "jane@example.com", "4242 4242 4242 4242", "+1 (415) 555-0134", "12345678", `say \"hi\"`, `\\`, `\":x`, `a\"@`, `x\\`, "", "}", "{[", "attributes"}
	var value func(b *strings.Builder, depth int)
	object := func(b *strings.Builder, depth int) {
		b.WriteByte('{')
		for k := range rng.IntN(4) {
			if k > 0 {
				b.WriteString(", "[:1+rng.IntN(2)])
			}
			b.WriteString(`"` + keys[rng.IntN(len(keys))] + `"`)
			b.WriteString(" :"[rng.IntN(2):])
			value(b, depth+1)
		}
		b.WriteByte('}')
	}
	value = func(b *strings.Builder, depth int) {
		switch k := rng.IntN(10); {
		case depth < 5 && k < 3:
			object(b, depth)
		case depth < 5 && k < 4:
			b.WriteByte('[')
			for n := range rng.IntN(3) {
				if n > 0 {
					b.WriteByte(',')
				}
				value(b, depth+1)
			}
			b.WriteByte(']')
		case k < 8:
			b.WriteString(`"` + strs[rng.IntN(len(strs))] + `"`)
		default:
			b.WriteString([]string{"1", "1700000000000", "true", "null", "-2.5e3"}[rng.IntN(5)])
		}
	}
	passed, compared := 0, 0
	for range 20_000 {
		var b strings.Builder
		b.WriteByte('[')
		for n := range 1 + rng.IntN(3) {
			if n > 0 {
				b.WriteByte(',')
			}
			object(&b, 0)
		}
		b.WriteByte(']')
		events := []byte(b.String())
		if !json.Valid(events) {
			t.Fatalf("generated invalid JSON: %s", events)
		}
		// Without escapes the quote-pairing scan answers as the hop does,
		// for the whole array and for each event.
		if !bytes.Contains(events, []byte{'\\'}) {
			for _, config := range configs {
				w := compileWants(piiscrub.Describe([]byte(config)))
				for _, d := range append([][]byte{events}, splitEvents(t, events)...) {
					if plain, hop := plainMayEdit(d, w), hopMayEdit(d, w); plain != hop {
						t.Fatalf("config %s: plainMayEdit %v, hopMayEdit %v: %s", config, plain, hop, d)
					}
					compared++
				}
			}
		}
		for _, config := range configs {
			w := compileWants(piiscrub.Describe([]byte(config)))
			if mayEdit(events, w) {
				continue
			}
			passed++
			wk, err := buildTable(events, w, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(wk.t.Strings) > 0 || len(wk.masks) > 0 {
				t.Fatalf("config %s: passed over events whose walk found %d strings and %d masks: %s", config, len(wk.t.Strings), len(wk.masks)/2, events)
			}
			putWalker(wk)
		}
		for _, config := range append(configs, `{"selectors":[".pii"]}`) {
			w := compileWants(piiscrub.Describe([]byte(config)))
			wk, err := buildTable(events, w, nil)
			if err != nil {
				t.Fatal(err)
			}
			sameTable(t, "config "+config, events, w, wk)
			putWalker(wk)
		}
	}
	if passed < 1000 {
		t.Errorf("the pre-filter passed over only %d of 80,000 cases: the test checks little", passed)
	}
	if compared < 10_000 {
		t.Errorf("the two scans were compared on only %d cases without escapes", compared)
	}

	clean := compileWants(piiscrub.Describe([]byte(`{"mask_all_inputs":false}`)))
	for i, seg := range workload.Recording(rand.New(rand.NewPCG(1, 2)), 3, 30<<10, 30<<10, 1_700_000_000_000) {
		if mayEdit(seg, clean) {
			t.Errorf("recording segment %d without personal data: the walk is not passed over", i)
		}
		all := compileWants(piiscrub.Describe(nil))
		wk, err := buildTable(seg, all, nil)
		if err != nil {
			t.Fatal(err)
		}
		if found := len(wk.masks) > 0 || len(wk.t.Strings) > 0; found != mayEdit(seg, all) {
			t.Errorf("recording segment %d with input masking: the walk finds something: %v; the pre-filter says %v", i, found, !found)
		}
		putWalker(wk)
	}
	for i, seg := range workload.FormSession(workload.DefaultPII(), 1_700_000_000_000) {
		if !mayEdit(seg, clean) {
			t.Errorf("checkout segment %d: passed over", i)
		}
	}
}

// spansOf returns where each top-level element of events is.
func spansOf(t testing.TB, events []byte) []Span {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(events))
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	var spans []Span
	for d.More() {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		end := d.InputOffset()
		spans = append(spans, Span{Start: end - int64(len(raw)), End: end})
	}
	return spans
}

// sameTable checks that the walk with the events' spans, which passes
// over the events eventMayEdit clears, builds the table wk (the walk of
// every event) holds, masks included.
func sameTable(t *testing.T, what string, events []byte, w *compiledWants, wk *walker) {
	t.Helper()
	got, err := buildTableSpans(events, w, nil, spansOf(t, events), false)
	if err != nil {
		t.Fatal(err)
	}
	defer putWalker(got)
	same := func(a, b any) bool { // nil and empty alike
		va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
		return va.Len() == 0 && vb.Len() == 0 || reflect.DeepEqual(a, b)
	}
	if !same(got.t.Strings, wk.t.Strings) || !same(got.t.at, wk.t.at) || !same(got.masks, wk.masks) || !same(got.t.Nodes, wk.t.Nodes) {
		t.Errorf("%s: the walk that passes over events builds another table:\n%+v %v %v\nwant\n%+v %v %v\nevents %s", what,
			got.t.Strings, got.t.at, got.masks, wk.t.Strings, wk.t.at, wk.masks, events)
	}
}
