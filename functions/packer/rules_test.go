package packer

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// recordReject keeps what went to the reject topic.
type recordReject struct {
	mu      sync.Mutex
	reasons []string
	data    [][]byte
}

func (r *recordReject) Reject(_ context.Context, _ map[string]string, data []byte, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
	r.data = append(r.data, data)
	return nil
}

func ruleLimits() rules.Limits {
	lim := rules.DefaultLimits()
	lim.MemoryBytes = 128 << 20
	lim.Timeout = 30 * time.Second // only cost-bound failures are tested elsewhere; a busy machine must not fail these
	return lim
}

// newRuleSet loads the rules in d's database once.
func newRuleSet(t testing.TB, d *testenv.Deps) *rules.Set {
	t.Helper()
	e := rules.NewEngine(ruleLimits())
	t.Cleanup(e.Close)
	rs := rules.NewSet(e, d.DB, d.Blobs, 16<<20)
	if err := rs.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestRuleFailModes: a module that traps on a segment rejects it with the
// rule's name when the assignment fails closed, and stores it untouched
// when it fails open; a rule's reject and drop decisions do what they say.
func TestRuleFailModes(t *testing.T) {
	d := testenv.NewDeps(t)
	trap := rulestest.Push(t, d.DB, d.Blobs, "trap", rulestest.Build(t, "shared/rules/testdata/trap"))
	echo := rulestest.Push(t, d.DB, d.Blobs, "echo", rulestest.Build(t, "shared/rules/testdata/echo"))
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 1, Name: "strict", ModuleHash: trap})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 2, Name: "lenient", ModuleHash: trap, FailOpen: true})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 3, Name: "echo", ModuleHash: echo})
	rej := &recordReject{}
	p := newPacker(t, d, testConfig(), rej)
	p.UseRules(newRuleSet(t, d))

	payload := []byte(`[{"type":3,"data":{"source":1},"timestamp":1700000000000}]`)
	tests := []struct {
		name    string
		project int64
		attrs   map[string]string
		want    Result
		reason  string
	}{
		{"closed, fine", 1, nil, Stored, ""},
		{"closed, trap", 1, map[string]string{"trap": "1"}, Rejected, "rule_failed:strict:"},
		{"open, trap", 2, map[string]string{"trap": "1"}, Stored, ""},
		{"reject", 3, map[string]string{"echo": "reject"}, Rejected, "rule:echo:echo_said_no"},
		{"drop", 3, map[string]string{"echo": "drop"}, Filtered, ""},
		{"rewrite invalid", 3, map[string]string{"echo": "rewrite", "events": `{"not":"an array"}`}, Rejected, "rule_output:not_array"},
		{"no rules", 4, map[string]string{"trap": "1"}, Stored, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := message(tt.project, uuid.New(), 0, payload)
			for k, v := range tt.attrs {
				m.Attributes[k] = v
			}
			before := len(rej.reasons)
			res, err := p.Ingest(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if res != tt.want {
				t.Fatalf("result = %s, want %s", res, tt.want)
			}
			if tt.reason != "" {
				if len(rej.reasons) != before+1 || !strings.HasPrefix(rej.reasons[before], tt.reason) {
					t.Fatalf("reject reasons = %v, want one starting %q", rej.reasons[before:], tt.reason)
				}
			}
		})
	}
}

// TestRewrittenEventsAreSealed: what a rule rewrites is what is stored, and
// its metadata (event count) comes from the rewritten events.
func TestRewrittenEventsAreSealed(t *testing.T) {
	d := testenv.NewDeps(t)
	echo := rulestest.Push(t, d.DB, d.Blobs, "echo", rulestest.Build(t, "shared/rules/testdata/echo"))
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 5, Name: "echo", ModuleHash: echo})
	p := newPacker(t, d, testConfig(), nil)
	p.UseRules(newRuleSet(t, d))
	replacement := `[{"type":3,"data":{"source":1},"timestamp":1700000000001},{"type":3,"data":{"source":1},"timestamp":1700000000002}]`
	m := message(5, uuid.New(), 0, workload.Gzip([]byte(`[{"type":3,"data":{"source":5,"text":"secret"},"timestamp":1700000000000}]`)))
	m.Attributes["echo"] = "rewrite"
	m.Attributes["events"] = replacement
	if res, err := p.Ingest(context.Background(), m); err != nil || res != Stored {
		t.Fatalf("Ingest = %s, %v", res, err)
	}
	got := rows(t, d)
	if len(got) != 1 || got[0].events != 2 {
		t.Fatalf("rows = %+v, want one with 2 events", got)
	}
	pt, err := open(context.Background(), d, d.KEKCache(), got[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(pt) != replacement {
		t.Fatalf("stored %q, want the rewritten events", pt)
	}
}

// TestRulesRefresh: Pack picks up an assignment made after it started,
// and its removal, without a restart.
func TestRulesRefresh(t *testing.T) {
	d := testenv.NewDeps(t)
	echo := rulestest.Push(t, d.DB, d.Blobs, "echo", rulestest.Build(t, "shared/rules/testdata/echo"))
	p := newPacker(t, d, testConfig(), &recordReject{})
	rs := newRuleSet(t, d)
	p.UseRules(rs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs.Run(ctx, 50*time.Millisecond)
	}()
	// The refresh may be compiling when the test ends: the engine must
	// outlive it.
	defer func() { cancel(); <-done }()

	ingest := func() Result {
		m := message(6, uuid.New(), 0, []byte(`[{"type":3,"data":{"source":1},"timestamp":1700000000000}]`))
		m.Attributes["echo"] = "drop"
		res, err := p.Ingest(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	waitFor := func(want Result) {
		t.Helper()
		// Compiling a module takes seconds, many on a loaded machine.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			got := ingest()
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("result stayed %s, want %s", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := ingest(); got != Stored {
		t.Fatalf("before any rule: %s", got)
	}
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 6, Name: "echo", ModuleHash: echo})
	waitFor(Filtered)
	if _, err := d.DB.UnassignRule(context.Background(), 6, "echo"); err != nil {
		t.Fatal(err)
	}
	waitFor(Stored)
}

// TestRewrittenEventsAreSliced: with slices derived, a segment a rule
// rewrites (a scrub) gets its console slice from the rewritten events, so
// what the rule removed is in no slice either.
func TestRewrittenEventsAreSliced(t *testing.T) {
	d := testenv.NewDeps(t)
	echo := rulestest.Push(t, d.DB, d.Blobs, "echo", rulestest.Build(t, "shared/rules/testdata/echo"))
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: 5, Name: "echo", ModuleHash: echo})
	cfg := testConfig()
	cfg.DeriveSlices = true
	p := newPacker(t, d, cfg, nil)
	p.UseRules(newRuleSet(t, d))
	console := func(text string) string {
		return `{"type":6,"data":{"plugin":"rrweb/console@1","payload":{"level":"log","payload":["` + text + `"]}},"timestamp":1700000000001}`
	}
	replacement := `[{"type":3,"data":{"source":1},"timestamp":1700000000000},` + console("scrubbed") + `]`
	m := message(5, uuid.New(), 0, workload.Gzip([]byte(`[{"type":3,"data":{"source":1},"timestamp":1700000000000},`+console("secret@example.test")+`]`)))
	m.Attributes["echo"] = "rewrite"
	m.Attributes["events"] = replacement
	if res, err := p.Ingest(context.Background(), m); err != nil || res != Stored {
		t.Fatalf("Ingest = %s, %v", res, err)
	}
	var slices int
	for _, r := range rows(t, d) {
		if r.typ != "console" {
			continue
		}
		slices++
		pt, err := open(context.Background(), d, d.KEKCache(), r)
		if err != nil {
			t.Fatal(err)
		}
		if want := "[" + console("scrubbed") + "]"; string(pt) != want {
			t.Errorf("console slice = %s, want %s", pt, want)
		}
	}
	if slices != 1 {
		t.Errorf("%d console slices, want 1", slices)
	}
}

// TestScrubInPlace: Pack lets the scrub mask the events it decoded in
// place, never a plain payload, which is the message's own: after the
// scrub, the message holds what was sent (a later rule's reject sends it
// to the reject topic as it came), and what is stored holds no secret,
// for plain and gzip payloads alike, stored as they are (the default,
// REWRITTEN_ENCODING=plain) or as s2.
func TestScrubInPlace(t *testing.T) {
	eachRewrittenEncoding(t, testScrubInPlace)
}

func testScrubInPlace(t *testing.T, enc segment.Encoding) {
	d := testenv.NewDeps(t)
	scrub := pushScrub(t, d)
	echo := rulestest.Push(t, d.DB, d.Blobs, "echo", rulestest.Build(t, "shared/rules/testdata/echo"))
	const scrubbed, thenReject = 21, 22
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: scrubbed, Name: "scrub", ModuleHash: scrub})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: thenReject, Name: "scrub", ModuleHash: scrub, Position: 0})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: thenReject, Name: "echo", ModuleHash: echo, Position: 1})
	rej := &recordReject{}
	cfg := testConfig()
	cfg.RewrittenPlain = enc == segment.Plain
	p := newPacker(t, d, cfg, rej)
	p.UseRules(newRuleSet(t, d))
	ctx := context.Background()

	const secret = "jane.doe@example.com"
	raw := []byte(`[{"type":3,"data":{"source":5,"text":"` + secret + `","isChecked":false,"id":7},"timestamp":1700000000000}]`)
	replay := uuid.New()
	for i, payload := range [][]byte{raw, workload.Gzip(raw)} {
		sent := bytes.Clone(payload)
		m := message(scrubbed, replay, i, payload)
		if res, err := p.Ingest(ctx, m); err != nil || res != Stored {
			t.Fatalf("segment %d: %s, %v", i, res, err)
		}
		if !bytes.Equal(m.Data, sent) {
			t.Errorf("segment %d: the message's payload changed under the scrub", i)
		}
		m = message(thenReject, replay, i, payload)
		m.Attributes["echo"] = "reject"
		if res, err := p.Ingest(ctx, m); err != nil || res != Rejected {
			t.Fatalf("segment %d, then rejected: %s, %v", i, res, err)
		}
		if got := rej.data[len(rej.data)-1]; !bytes.Equal(got, sent) {
			t.Errorf("segment %d: the reject topic got %q, want the payload as sent", i, got)
		}
	}
	keks := d.KEKCache()
	n := 0
	for _, x := range rows(t, d) {
		if x.project != scrubbed {
			continue
		}
		n++
		if x.enc != string(enc) {
			t.Errorf("segment %d stored as %s, want %s", x.segID, x.enc, enc)
		}
		b, err := open(ctx, d, keks, x)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) || !bytes.Contains(b, []byte(`"text":"********************"`)) {
			t.Errorf("segment %d stored as %s", x.segID, b)
		}
	}
	if n != 2 {
		t.Fatalf("%d segments stored, want 2", n)
	}
}

// TestEventBuffersAreReused: for a project with rules, the pass decodes
// each segment into a pooled buffer, which goes back to the pool as soon
// as the segment is validated, while others are being decoded into it.
// Many segments at once, of several sizes (buffers grow and are swapped
// in the pool), in every encoding a client sends, kept 30 days (the
// scrub's s2) or 365 (transcoded), masked or with nothing to mask (stored
// as sent): each stored segment is exactly the events the rules make of
// its own payload, read by Apply without the pool. Rewritten events are
// stored as they are (the pool gives the buffer up to the entry) or as s2.
func TestEventBuffersAreReused(t *testing.T) {
	eachRewrittenEncoding(t, testEventBuffersAreReused)
}

func testEventBuffersAreReused(t *testing.T, enc segment.Encoding) {
	d := testenv.NewDeps(t)
	scrub := pushScrub(t, d)
	const masking, clean = 41, 42
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: masking, Name: "scrub", ModuleHash: scrub})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: clean, Name: "scrub", ModuleHash: scrub, Config: []byte(findsNothing)})
	cfg := testConfig()
	cfg.FlushAge = 20 * time.Millisecond
	cfg.TranscodeMinRetention = 365
	cfg.RewrittenPlain = enc == segment.Plain
	p := newPacker(t, d, cfg, &recordReject{})
	rs := newRuleSet(t, d)
	p.UseRules(rs)
	ctx := context.Background()

	rng := mrand.New(mrand.NewPCG(7, 8))
	replay := uuid.New()
	type sent struct {
		m    Message
		want []byte
	}
	var all []sent
	for i := range 96 {
		size := []int{2 << 10, 30 << 10, 120 << 10}[i%3]
		raw := workload.Recording(rng, 2, size, 0, 1_700_000_000_000+int64(i)*60_000)[i%2]
		project := []int64{masking, clean}[i/3%2]
		var payload []byte
		switch i / 6 % 4 {
		case 0:
			payload = raw
		case 1, 2:
			payload = workload.Gzip(raw)
		default:
			payload = segment.CompressLevel(raw, segment.LevelFastest)
		}
		m := message(project, replay, i, payload)
		m.Attributes[segment.AttrRetentionDays] = []string{"30", "365"}[i/24%2]
		attrs, err := segment.ParseAttributes(m.Attributes)
		if err != nil {
			t.Fatal(err)
		}
		v, err := rs.Apply(ctx, attrs.ID, attrs.RetentionDays, m.Attributes, bytes.Clone(raw))
		if err != nil {
			t.Fatal(err)
		}
		want := raw
		if v.Events != nil {
			want = v.Events
		}
		all = append(all, sent{m, want})
	}
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() {
			if res, err := p.Ingest(ctx, s.m); err != nil || res != Stored {
				t.Errorf("segment %s: %s, %v", s.m.Attributes[segment.AttrSegmentID], res, err)
			}
		})
	}
	wg.Wait()
	keks := d.KEKCache()
	got, masked := 0, 0
	for _, x := range rows(t, d) {
		if x.replay != replay || x.typ != segment.DefaultType {
			continue
		}
		got++
		b, err := open(ctx, d, keks, x)
		if err != nil {
			t.Fatal(err)
		}
		if want := all[x.segID].want; !bytes.Equal(b, want) {
			t.Errorf("segment %d (%s): stored %d bytes other than the rules make of it (%d)", x.segID, x.enc, len(b), len(want))
		}
		if x.enc == string(enc) {
			masked++
		}
	}
	if got != len(all) || masked == 0 {
		t.Errorf("%d of %d segments stored, %d of them masked (%s)", got, len(all), masked, enc)
	}
}

// TestEventBufferIsFreeAfterValidate: nothing validate returns (what is
// stored, the slices, the issues) shares the pooled buffer the pass
// decoded the segment into, which the next segment overwrites: writing
// over the buffer the pool gives back leaves every result as it was,
// whether rewritten events are stored as they are (then in the buffer,
// which the pool gives up) or as s2.
func TestEventBufferIsFreeAfterValidate(t *testing.T) {
	eachRewrittenEncoding(t, testEventBufferIsFreeAfterValidate)
}

func testEventBufferIsFreeAfterValidate(t *testing.T, enc segment.Encoding) {
	d := testenv.NewDeps(t)
	scrub := pushScrub(t, d)
	detect := rulestest.Push(t, d.DB, d.Blobs, "detect", rulestest.Build(t, "shared/rules/modules/detect/wasm"))
	const masking, clean = 43, 44
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: masking, Name: "scrub", ModuleHash: scrub})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: masking, Name: "detect", ModuleHash: detect, Position: 1})
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: clean, Name: "scrub", ModuleHash: scrub, Config: []byte(findsNothing)})
	cfg := testConfig()
	cfg.DeriveSlices = true
	cfg.TranscodeMinRetention = 365
	cfg.RewrittenPlain = enc == segment.Plain
	p := newPacker(t, d, cfg, &recordReject{})
	p.UseRules(newRuleSet(t, d))
	ctx := context.Background()
	segs := workload.FormSession(workload.DefaultPII(), 1_700_000_000_000)
	segs = append(segs, workload.Recording(mrand.New(mrand.NewPCG(9, 10)), 3, 30<<10, 30<<10, 1_700_000_000_000)...)
	poisoned := 0
	for _, project := range []int64{masking, clean} {
		for _, retention := range []string{"30", "365"} {
			for i, raw := range segs {
				m := message(project, uuid.New(), i, workload.Gzip(raw))
				m.Attributes[segment.AttrRetentionDays] = retention
				v, err := p.validate(ctx, m)
				if err != nil {
					t.Fatal(err)
				}
				before := fmt.Sprint(v.stored, v.slices, v.issues)
				bp := eventBufs.Get().(*[]byte)
				if cap(*bp) > 0 {
					poisoned++
					b := (*bp)[:cap(*bp)]
					for k := range b {
						b[k] = 'X'
					}
				}
				eventBufs.Put(bp)
				if fmt.Sprint(v.stored, v.slices, v.issues) != before {
					t.Errorf("project %d, %s days, segment %d: what validate returned changed with the pooled buffer", project, retention, i)
				}
			}
		}
	}
	if poisoned < len(segs) {
		t.Errorf("the pool gave back a used buffer %d times in %d: the test checks little", poisoned, 4*len(segs))
	}
}

// TestRewrittenEncoding: how Pack stores what the scrub rewrote. With
// REWRITTEN_ENCODING=plain as they are, for compaction to compress, but
// for a segment over 1 MiB of events or past a replay's first 16 MiB of
// them (its number times its size), which are s2; with s2 always s2; and
// for segments kept long enough to be transcoded, zstd as every payload of
// theirs. Each is read back as the scrub's events.
func TestRewrittenEncoding(t *testing.T) {
	d := testenv.NewDeps(t)
	scrub := pushScrub(t, d)
	const project = 51
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: project, Name: "scrub", ModuleHash: scrub})
	cfg := testConfig()
	cfg.TranscodeMinRetention, cfg.Level = 365, segment.LevelBetter
	p := newPacker(t, d, cfg, &recordReject{})
	rs := newRuleSet(t, d)
	p.UseRules(rs)
	ctx := context.Background()
	// events of about size bytes: inputs the scrub masks.
	events := func(size int) []byte {
		var b strings.Builder
		b.WriteString("[")
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"type":3,"data":{"source":5,"text":"typed text number %d","isChecked":false,"id":7},"timestamp":%d}`, i, 1_700_000_000_000+i)
		}
		b.WriteString("]")
		return []byte(b.String())
	}
	tests := []struct {
		name      string
		plain     bool
		size      int
		segment   int
		retention string
		want      segment.Encoding
	}{
		{"plain, first segment", true, 30 << 10, 0, "30", segment.Plain},
		{"plain, 300 KB, 50th segment", true, 300 << 10, 50, "30", segment.Plain},
		{"plain, past the replay's first 16 MiB", true, 30 << 10, 600, "30", segment.S2},
		{"plain, over 1 MiB", true, 1<<20 + 100, 0, "30", segment.S2},
		{"s2", false, 30 << 10, 0, "30", segment.S2},
		{"kept a year", true, 30 << 10, 0, "365", segment.Zstd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.cfg.RewrittenPlain = tt.plain
			raw := events(tt.size)
			m := message(project, uuid.New(), tt.segment, workload.Gzip(raw))
			m.Attributes[segment.AttrRetentionDays] = tt.retention
			v, err := p.validate(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			if v.enc != tt.want {
				t.Errorf("stored as %s, want %s", v.enc, tt.want)
			}
			got, err := segment.Decode(v.enc, v.stored, 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			want, err := rs.Apply(ctx, v.attrs.ID, 30, m.Attributes, raw)
			if err != nil || want.Events == nil {
				t.Fatalf("the scrub rewrote nothing: %v", err)
			}
			if !bytes.Equal(got, want.Events) {
				t.Errorf("stored %d bytes other than the scrub's %d", len(got), len(want.Events))
			}
		})
	}
}

// eachRewrittenEncoding runs f for each way Pack stores the events rules
// rewrote (REWRITTEN_ENCODING).
func eachRewrittenEncoding(t *testing.T, f func(*testing.T, segment.Encoding)) {
	for _, enc := range []segment.Encoding{segment.Plain, segment.S2} {
		t.Run(string(enc), func(t *testing.T) { f(t, enc) })
	}
}

// pushScrub stores the repository's PII scrub module in d's bucket and
// returns its hash, for assignments.
func pushScrub(t *testing.T, d *testenv.Deps) string {
	t.Helper()
	return rulestest.Push(t, d.DB, d.Blobs, "piiscrub", rulestest.Build(t, "shared/rules/modules/piiscrub/wasm"))
}

// findsNothing is a scrub config under which nothing in real-shaped
// recordings is masked: the segment is stored as it came.
const findsNothing = `{"mask_all_inputs":false,"patterns":[]}`
