package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestScrubbedReplayThroughServe packs a checkout recording with an e-mail
// address, a card number, a phone number and a name typed into and shown on
// the page, for a project running the PII scrub module and for one without
// rules, and reads both back through Serve: the first holds none of the
// personal data in any byte yet keeps every event, node and timestamp (so
// it still plays), the second holds all of it (so the check can fail).
// Pack stores the rewritten segments as they are (REWRITTEN_ENCODING=plain,
// the default) or as s2.
func TestScrubbedReplayThroughServe(t *testing.T) {
	for _, enc := range []segment.Encoding{segment.Plain, segment.S2} {
		t.Run(string(enc), func(t *testing.T) { testScrubbedReplayThroughServe(t, enc) })
	}
}

func testScrubbedReplayThroughServe(t *testing.T, enc segment.Encoding) {
	e := newEnv(t, defaults())
	d := e.d
	ctx := context.Background()
	const scrubbed, plain = 11, 12
	hash := rulestest.Push(t, d.DB, d.Blobs, "piiscrub", rulestest.Build(t, "shared/rules/modules/piiscrub/wasm"))
	rulestest.Assign(t, d.DB, store.RuleAssignment{ProjectID: scrubbed, Name: "scrub", ModuleHash: hash, Config: []byte(`{"selectors":[".pii"]}`)})

	lim := rules.DefaultLimits()
	lim.Timeout = 30 * time.Second // a busy machine must not turn this into a fail-closed reject
	engine := rules.NewEngine(lim)
	defer engine.Close()
	rs := rules.NewSet(engine, d.DB, d.Blobs, 16<<20)
	if err := rs.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	p := packer.New(packer.Config{
		FlushBytes: 8 << 20, FlushSegments: 1000, FlushAge: 50 * time.Millisecond, MaxConcurrency: 1000,
		MaxBufferBytes: 64 << 20, FlushTimeout: time.Minute,
		Limits: segment.Limits{MaxDecompressed: 16 << 20}, RewrittenPlain: enc == segment.Plain,
	}, d.DB, d.Blobs, d.Keyring(), failReject{t})
	p.UseRules(rs)
	defer p.Close()

	pii := workload.DefaultPII()
	segs := workload.FormSession(pii, 1_700_000_000_000)
	replay := uuid.New()
	for _, project := range []int64{scrubbed, plain} {
		for i, raw := range segs {
			payload := raw
			if i == 1 {
				payload = workload.Gzip(raw) // rules see decompressed events
			}
			res, err := p.Ingest(ctx, packer.Message{ID: fmt.Sprint(project, i), Data: payload, Attributes: map[string]string{
				"project_id": strconv.FormatInt(project, 10), "replay_id": replay.String(), "segment_id": strconv.Itoa(i),
			}})
			if err != nil || res != packer.Stored {
				t.Fatalf("project %d segment %d: %s, %v", project, i, res, err)
			}
		}
	}

	// Pack stores the scrubbed segments it rewrote as enc (the others as
	// they came), and Serve returns them byte for byte as the scrub made
	// them: the events the rule set gives for each segment, read here
	// without Pack.
	var want []string
	rewrote := 0
	rows := segmentRows(t, d, scrubbed, replay)
	if len(rows) != len(segs) {
		t.Fatalf("%d segment rows, want %d", len(rows), len(segs))
	}
	for i, raw := range segs {
		v, err := rs.Apply(ctx, segment.ID{ProjectID: scrubbed, ReplayID: replay, SegmentID: i, Type: segment.DefaultType}, 30, nil, raw)
		if err != nil {
			t.Fatal(err)
		}
		if v.Events != nil {
			raw = v.Events
		}
		want = append(want, compactEvents(t, raw)...)
		if rows[i].Encoding == enc && v.Events != nil {
			rewrote++
		} else if v.Events != nil {
			t.Errorf("rewritten segment %d stored as %s, want %s", i, rows[i].Encoding, enc)
		}
	}
	if rewrote == 0 {
		t.Fatalf("no segment stored as %s: the scrub rewrote none", enc)
	}
	if got := compactEvents(t, readAll(t, get(t, recordingURL(e.url, scrubbed, replay, "format=json"), token(t, scrubbed)))); !slices.Equal(got, want) {
		t.Fatalf("Serve returned %d events that differ from the %d the scrub made", len(got), len(want))
	}

	secrets := append(pii.Secrets(), pii.Name, "jane.doe", "4242", "555-0134")
	read := func(project int64, format string) string {
		return string(readAll(t, get(t, recordingURL(e.url, project, replay, "format="+format), token(t, project))))
	}
	for _, s := range secrets {
		if got := read(plain, "json"); !strings.Contains(got, s) {
			t.Fatalf("control replay lacks %q: the check below could not fail", s)
		}
	}
	for _, format := range []string{"json", "ndjson"} {
		got := read(scrubbed, format)
		for _, s := range secrets {
			if strings.Contains(got, s) {
				t.Errorf("%s: scrubbed replay contains %q", format, s)
			}
		}
		for _, keep := range []string{"Checkout", "Pay now", `"tagName":"form"`, "https://shop.example/checkout"} {
			if !strings.Contains(got, keep) {
				t.Errorf("%s: scrubbed replay lost %q", format, keep)
			}
		}
	}

	// Same shape: per segment the same events with the same types,
	// sources, timestamps and node ids; only string values differ.
	lines := ndjsonSegments(t, []byte(read(scrubbed, "ndjson")))
	if len(lines) != len(segs) {
		t.Fatalf("%d segments read back, want %d", len(lines), len(segs))
	}
	for i, raw := range segs {
		want := compactEvents(t, raw)
		if len(lines[i]) != len(want) {
			t.Fatalf("segment %d: %d events, want %d", i, len(lines[i]), len(want))
		}
		for j := range want {
			if a, b := shape(t, want[j]), shape(t, lines[i][j]); a != b {
				t.Errorf("segment %d event %d changed shape:\n want %s\n got  %s", i, j, a, b)
			}
		}
	}
}

// shape is an event with every string replaced by its length: masking
// keeps lengths, so a scrubbed event has its original's shape.
func shape(t *testing.T, ev string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(ev), &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return fmt.Sprintf("<%d>", len([]rune(x)))
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = walk(x[k])
			}
		}
		return v
	}
	b, _ := json.Marshal(walk(v))
	return string(b)
}
