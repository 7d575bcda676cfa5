package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// TestValidateDecode: in every encoding, ValidateDecode reports what
// ValidateEvents reports, hands the hook the events the pass over the
// plain events in one piece sees, at the same offsets, and returns the
// decoded events: the payload itself when plain, else in the buffer given
// when it has room for what the payload states (a gzip trailer's size,
// a zstd frame's; a guess for zlib), or in a new one. With the ScrubCheck,
// an event across the pass's decompressed pieces may be marked where the
// pass in one piece clears it (it marks what it does not read through),
// never the reverse.
func TestValidateDecode(t *testing.T) {
	small, _ := recording(30<<10, 3)
	large, _ := recording(700<<10, 4) // over several of the pass's pieces
	type seen struct {
		Start, End          int64
		Type, Timestamp     int64
		HasType, HasRawType bool
		MayScrub, TagName   bool
	}
	collect := func(out *[]seen) *EventHook {
		return &EventHook{Scrub: fuzzScrub, RawTypes: []int64{4}, OnEvent: func(m EventMeta) {
			*out = append(*out, seen{m.Start, m.End, m.Type, m.Timestamp, m.HasType, m.Raw != nil, m.MayScrub, m.TagName})
		}}
	}
	for _, raw := range [][]byte{small, large} {
		var want []seen
		if _, err := ValidateEvents(raw, Limits{}, collect(&want)); err != nil {
			t.Fatal(err)
		}
		for _, enc := range encodings {
			for _, room := range []int{0, 100, 8*len(raw) + 64<<10} {
				t.Run(fmt.Sprintf("%s/%dKB/room%d", enc, len(raw)>>10, room), func(t *testing.T) {
					payload := encode(t, enc, raw)
					winfo, err := ValidateEvents(payload, Limits{}, nil)
					if err != nil {
						t.Fatal(err)
					}
					buf := make([]byte, 0, room)
					var got []seen
					info, events, err := ValidateDecode(payload, Limits{}, collect(&got), buf)
					if err != nil {
						t.Fatal(err)
					}
					if info != winfo {
						t.Errorf("Info %+v, ValidateEvents says %+v", info, winfo)
					}
					if !bytes.Equal(events, raw) {
						t.Fatalf("decoded %d bytes, not the %d encoded", len(events), len(raw))
					}
					if len(got) != len(want) {
						t.Fatalf("the hook saw %d events, the pass in one piece %d", len(got), len(want))
					}
					marked := 0
					for k := range got {
						g, w := got[k], want[k]
						if g.MayScrub && !w.MayScrub {
							marked++
							g.MayScrub, g.TagName = w.MayScrub, w.TagName
						}
						if g != w {
							t.Fatalf("event %d: the hook saw %+v, the pass in one piece %+v", k, g, w)
						}
					}
					if marked > len(raw)/(64<<10)+1 {
						t.Errorf("%d events marked that the pass in one piece clears", marked)
					}
					switch {
					case enc == Plain:
						if &events[0] != &payload[0] {
							t.Error("a plain payload was copied")
						}
					case room > len(raw)*8:
						if &events[0] != &buf[:1][0] {
							t.Error("the events are not in the buffer given, which had room")
						}
					}
				})
			}
		}
	}
}

// TestValidateDecodeRefuses: ValidateDecode refuses what ValidateEvents
// refuses, with the same error and no events, and a payload that
// decompresses past the limit, or lies about its size, costs at most a
// small multiple of the limit in allocations.
func TestValidateDecodeRefuses(t *testing.T) {
	const limit = 1 << 20
	lim := Limits{MaxDecompressed: limit}
	rec, _ := recording(8<<10, 5)
	lying := encode(t, Gzip, rec)
	binary.LittleEndian.PutUint32(lying[len(lying)-4:], 0xffffffff) // ISIZE: 4 GiB
	truncated := encode(t, Gzip, rec)
	truncated = truncated[:len(truncated)/2]
	tests := []struct {
		name    string
		payload []byte
		reason  string
	}{
		{"gzip bomb", bomb(t, Gzip, "[", ' ', 64<<20, "]"), ReasonDecompressedTooLarge},
		{"zlib bomb", bomb(t, Zlib, "[", ' ', 64<<20, "]"), ReasonDecompressedTooLarge},
		{"zstd bomb", bomb(t, Zstd, "[", ' ', 64<<20, "]"), ReasonDecompressedTooLarge},
		{"gzip stating 4 GiB", lying, ReasonBadCompression},
		{"gzip cut short", truncated, ReasonBadCompression},
		{"gzip of invalid JSON", encode(t, Gzip, []byte(`[{"type":2,}]`)), ReasonNotJSON},
		{"plain over the limit", bytes.Repeat([]byte(" "), limit+1), ReasonDecompressedTooLarge},
		{"empty", nil, ReasonEmptyPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, werr := ValidateEvents(tt.payload, lim, nil)
			ValidateDecode(encode(t, Detect(tt.payload), []byte(`[{}]`)), lim, nil, nil) // warm the pools
			var (
				info   Info
				events []byte
				err    error
			)
			total, _ := heapGrowth(func() { info, events, err = ValidateDecode(tt.payload, lim, nil, nil) })
			if r, _ := Reason(err); r != tt.reason || fmt.Sprint(err) != fmt.Sprint(werr) {
				t.Fatalf("error %v (reason %q); ValidateEvents: %v; want reason %q", err, r, werr, tt.reason)
			}
			if events != nil || info != (Info{}) {
				t.Errorf("%d bytes of events and %+v with an error", len(events), info)
			}
			if Detect(tt.payload) != Plain && total > 4*limit {
				t.Errorf("allocated %d bytes for a limit of %d", total, limit)
			}
			t.Logf("allocated %d bytes", total)
		})
	}
}
