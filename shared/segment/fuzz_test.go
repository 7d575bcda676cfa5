package segment

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var reasons = []string{
	ReasonEmptyPayload, ReasonPayloadTooLarge, ReasonBadCompression, ReasonDecompressedTooLarge,
	ReasonNotJSON, ReasonNotArray, ReasonBadEvent,
}

// FuzzValidate checks that Validate never panics, fails only with payload
// reasons, reports sane metadata, and reads the same JSON the same way
// whatever its encoding.
func FuzzValidate(f *testing.F) {
	rec, _ := recording(1<<10, 5)
	for _, s := range []string{
		events, "", " ", "[]", "[{}]", "[null]", "[1]", `{"a":1}`, `"x"`, "[{},]", "[{}] x",
		`[{"type":2,"timestamp":1760000000.5}]`, `[{"timestamp":-1}]`, `[{"timestamp":1e400}]`,
		`[{"type":"2"}]`, `[{"Type":2}]`, "\x1f\x8b", "\x78\x9c", "\x28\xb5\x2f\xfd", "[[[[[[[[[[",
	} {
		f.Add([]byte(s))
	}
	for _, enc := range encodings {
		f.Add(encode(f, enc, rec))
		f.Add(encode(f, enc, []byte(`[{"type":2}]`)))
	}
	lim := Limits{MaxPayload: 256 << 10, MaxDecompressed: 256 << 10}
	f.Fuzz(func(t *testing.T, payload []byte) {
		info, err := Validate(payload, lim)
		if err != nil {
			reason, ok := Reason(err)
			if !ok || !slices.Contains(reasons, reason) {
				t.Fatalf("error %v has reason %q, not a payload reason", err, reason)
			}
			if info != (Info{}) {
				t.Fatalf("Info %+v with error %v", info, err)
			}
		} else {
			if info.Encoding != Detect(payload) {
				t.Fatalf("Encoding %q, Detect says %q", info.Encoding, Detect(payload))
			}
			if info.RawSize <= 0 || info.RawSize > lim.MaxDecompressed || info.EventCount < 0 {
				t.Fatalf("implausible Info %+v", info)
			}
			if (info.FirstTS == 0) != (info.LastTS == 0) || info.FirstTS > info.LastTS || info.FirstTS < 0 {
				t.Fatalf("implausible timestamps in %+v", info)
			}
			raw, err := Decode(info.Encoding, payload, lim.MaxDecompressed)
			if err != nil {
				t.Fatalf("Decode of a valid payload: %v", err)
			}
			if int64(len(raw)) != info.RawSize {
				t.Fatalf("Decode gave %d bytes, Info says %d", len(raw), info.RawSize)
			}
		}

		// The same bytes, compressed, must validate the same way.
		if Detect(payload) != Plain || len(payload) == 0 || int64(len(payload)) > lim.MaxPayload {
			return
		}
		for _, c := range []struct {
			name     string
			compress func([]byte) []byte
		}{
			{"gzip", func(b []byte) []byte { return encode(t, Gzip, b) }},
			{"zstd", Compress},
			{"zstd stream", func(b []byte) []byte { return zstdStream(t, b) }},
		} {
			enc := c.name
			cinfo, cerr := Validate(c.compress(payload), lim)
			r1, _ := Reason(err)
			r2, _ := Reason(cerr)
			if r1 != r2 {
				t.Fatalf("plain: %v; %s: %v", err, enc, cerr)
			}
			if err == nil {
				cinfo.Encoding = Plain // compared apart from the encoding
				if diff := cmp.Diff(info, cinfo); diff != "" {
					t.Fatalf("%s Info differs from plain (-plain +%s):\n%s", enc, enc, diff)
				}
			}
		}
	})
}
