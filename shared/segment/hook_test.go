package segment

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEventHook checks that the hook sees every event once, in order, with
// its type, normalised timestamp and offsets, and the raw bytes of the
// types asked for within the cap, whether the events sit in one chunk or
// span the decompressor's chunks.
func TestEventHook(t *testing.T) {
	big := strings.Repeat("x", 3*chunkSize) // spans chunks
	evs := []string{
		`{"type":4,"timestamp":1760000000000,"data":{"href":"https://example.com/"}}`,
		`{"type":5,"timestamp":1760000000.5,"data":{"tag":"console","payload":{"level":"warn"}}}`,
		`{"timestamp":1760000001000}`,
		`{"type":6,"timestamp":1760000002000,"data":{"plugin":"network","payload":"` + big + `"}}`,
		`{"type":6,"timestamp":1760000003000,"data":{"plugin":"network","payload":"` + big[:2*chunkSize] + `"}}`,
		`{"type":3,"timestamp":1760000004000,"data":{"source":1}}`,
	}
	raw := []byte("[" + strings.Join(evs, ",\n") + "]")
	type seen struct {
		Index      int
		Type       int64
		HasType    bool
		Timestamp  int64
		Start, End int64
		Raw        string
	}
	var want []seen
	off := int64(1)
	for i, e := range evs {
		s := seen{Index: i, Start: off, End: off + int64(len(e))}
		fmt.Sscanf(e, `{"type":%d`, &s.Type)
		s.HasType = strings.HasPrefix(e, `{"type"`)
		s.Timestamp = []int64{1760000000000, 1760000000500, 1760000001000, 1760000002000, 1760000003000, 1760000004000}[i]
		if (s.Type == 5 || s.Type == 6) && len(e) <= 3*chunkSize {
			s.Raw = e
		}
		want = append(want, s)
		off += int64(len(e)) + 2
	}
	for _, enc := range encodings {
		t.Run(string(enc), func(t *testing.T) {
			var got []seen
			hook := &EventHook{
				OnEvent: func(m EventMeta) {
					got = append(got, seen{m.Index, m.Type, m.HasType, m.Timestamp, m.Start, m.End, string(m.Raw)})
					if m.Raw != nil && !bytes.Equal(m.Raw, raw[m.Start:m.End]) {
						t.Errorf("event %d: Raw is not the bytes at its offsets", m.Index)
					}
				},
				RawTypes: []int64{5, 6},
				MaxRaw:   3 * chunkSize,
			}
			info, err := ValidateEvents(encode(t, enc, raw), Limits{}, hook)
			if err != nil {
				t.Fatal(err)
			}
			if info.EventCount != len(evs) {
				t.Errorf("EventCount = %d, want %d", info.EventCount, len(evs))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("hook calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEventHookUnused checks that validation without a hook allocates
// nothing per event.
func TestEventHookUnused(t *testing.T) {
	raw, _ := recording(256<<10, 9)
	for _, enc := range encodings {
		payload := encode(t, enc, raw)
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := Validate(payload, Limits{}); err != nil {
				t.Fatal(err)
			}
		})
		// A few per call (the result, pooled state refills), none per event.
		if allocs > 4 {
			t.Errorf("%s: %.1f allocations per Validate of %d events, want at most 4", enc, allocs, len(raw))
		}
	}
}
