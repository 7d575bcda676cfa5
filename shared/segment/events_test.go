package segment

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/replayvault/replayvault/shared/workload"
)

func TestEvents(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 400) + "1" + strings.Repeat("}", 400)
	for _, tc := range []struct {
		name string
		doc  string
		want []Event
	}{
		{"empty", ` [ ] `, nil},
		{"one", `[{"type":2,"timestamp":1700000000000}]`, []Event{
			{Type: 2, HasType: true, TS: 1700000000000, Raw: []byte(`{"type":2,"timestamp":1700000000000}`)}}},
		{"spaces and order", "[\n {\"timestamp\": 1700000000001 , \"type\" : 3} ,\r\n\t{\"x\":[1,{\"y\":\"]}\"}]}\n]\n", []Event{
			{Type: 3, HasType: true, TS: 1700000000001, Raw: []byte(`{"timestamp": 1700000000001 , "type" : 3}`)},
			{Raw: []byte(`{"x":[1,{"y":"]}"}]}`)}}},
		{"escaped quotes", `[{"s":"a\"}]\\","type":"5","timestamp":"1700000000.5"}]`, []Event{
			{Type: 5, HasType: true, TS: 1700000000500, Raw: []byte(`{"s":"a\"}]\\","type":"5","timestamp":"1700000000.5"}`)}}},
		{"null fields", `[{"type":null,"timestamp":null}]`, []Event{{Raw: []byte(`{"type":null,"timestamp":null}`)}}},
		{"deep", `[{"type":2,"timestamp":1700000000000,"data":` + deep + `}]`, []Event{
			{Type: 2, HasType: true, TS: 1700000000000, Raw: []byte(`{"type":2,"timestamp":1700000000000,"data":` + deep + `}`)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Event
			err := Events([]byte(tc.doc), func(ev Event) error {
				ev.Raw = bytes.Clone(ev.Raw)
				got = append(got, ev)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventsRejects(t *testing.T) {
	for _, doc := range []string{``, `{}`, `[`, `[{"type":1}`, `[{"type":1},]`, `[1]`, `[{"type":"x"}]`,
		`[{"timestamp":-1}]`, `[{"a":"b}]`, `[{"type":1}] x`, `[{"type":1} {"type":2}]`} {
		if err := Events([]byte(doc), func(Event) error { return nil }); err == nil {
			t.Errorf("Events(%q) = nil error", doc)
		}
	}
}

// TestEventsMatchesValidate walks generated segments and checks that the
// split events are exactly the array's elements and that the metadata
// agrees with Validate's.
func TestEventsMatchesValidate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		doc := workload.Segment(rng, i%3, 1_700_000_000_000+int64(i)*1000, 2000+rng.IntN(20000))
		info, err := Validate(doc, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		var want []json.RawMessage
		if err := json.Unmarshal(doc, &want); err != nil {
			t.Fatal(err)
		}
		var (
			n           int
			first, last int64
			full        bool
		)
		err = Events(doc, func(ev Event) error {
			if !bytes.Equal(ev.Raw, want[n]) {
				t.Fatalf("event %d = %s, want %s", n, ev.Raw, want[n])
			}
			n++
			if first == 0 || ev.TS < first {
				first = ev.TS
			}
			last = max(last, ev.TS)
			full = full || ev.Type == EventTypeFullSnapshot
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got := Info{Encoding: Plain, RawSize: int64(len(doc)), EventCount: n, FirstTS: first, LastTS: last, HasFullSnapshot: full}
		if diff := cmp.Diff(info, got); diff != "" {
			t.Fatalf("segment %d (-Validate +Events):\n%s", i, diff)
		}
	}
}
