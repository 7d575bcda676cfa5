package segment

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var reasons = []string{
	ReasonEmptyPayload, ReasonPayloadTooLarge, ReasonBadCompression, ReasonDecompressedTooLarge,
	ReasonNotJSON, ReasonNotArray, ReasonBadEvent, ReasonTooDeep,
}

// FuzzValidate checks that Validate never panics, fails only with payload
// reasons, reports sane metadata, and reads the same JSON the same way
// whatever its encoding; and, differentially, that it accepts exactly what
// encoding/json.Valid accepts and is an array of event objects within the
// depth limit, reporting the metadata a plain encoding/json decode gives
// (see oracle), however the JSON is cut into chunks.
func FuzzValidate(f *testing.F) {
	rec, _ := recording(1<<10, 5)
	for _, s := range []string{
		events, "", " ", "[]", "[{}]", "[null]", "[1]", `{"a":1}`, `"x"`, "[{},]", "[{}] x",
		`[{"type":2,"timestamp":1760000000.5}]`, `[{"timestamp":-1}]`, `[{"timestamp":1e400}]`,
		`[{"type":"2"}]`, `[{"Type":2}]`, "\x1f\x8b", "\x78\x9c", "\x28\xb5\x2f\xfd", "[[[[[[[[[[",
		// Leniencies of the old validator, and escapes and folding.
		`[{"a":NaN}]`, `[{"a":01}]`, `[{"a":.5}]`, `[{"a":1.}]`, `[{"a":+1}]`, `[{"a":1e}]`, `[{"a":"\q"}]`,
		`[{"a":"\u12"}]`, "[{\"a\":\"\x01\"}]", "[{\"a\":\"\xff\xfe\"}]", `[{"\u0074ype":2}]`,
		`[{"TIMESTAMP":"1.5e9","timeſtamp":17e11}]`, `[{"type":2,"type":null}]`, `[{"type":true,"type":2}]`,
		`[{"timestamp":"\u0031"}]`, `[{"a":"\ud800\udc00"}]`, `[{"type":-0}]`, `[{"type":2.0}]`, `42`, `-`, `[-1.5E+3]`,
		`[{"timestamp":1760000000000.00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001}]`,
	} {
		f.Add([]byte(s))
	}
	for _, enc := range append(encodings, S2) {
		f.Add(encode(f, enc, rec))
		f.Add(encode(f, enc, []byte(`[{"type":2}]`)))
	}
	// s2 blocks that lie about their size (the varint header first).
	f.Add(binary.AppendUvarint(nil, 256<<10+1))
	f.Add(append(binary.AppendUvarint(nil, 0xffffffff), encode(f, S2, rec)[3:]...))
	lim := Limits{MaxPayload: 256 << 10, MaxDecompressed: 256 << 10, MaxDepth: 64}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if got, want := ValidJSON(payload), json.Valid(payload); got != want {
			t.Fatalf("ValidJSON = %v, json.Valid = %v", got, want)
		}
		// Any bytes read back as an s2 segment (only Pack writes them,
		// but a row could be damaged) decode within the bound or fail
		// as bad compression; the stored path agrees with Decode.
		for _, stored := range []bool{false, true} {
			var out []byte
			var err error
			if stored {
				out, err = DecodeStored(S2, payload, nil, lim.MaxDecompressed)
			} else {
				out, err = Decode(S2, payload, lim.MaxDecompressed)
			}
			if reason, _ := Reason(err); err != nil && reason != ReasonBadCompression && reason != ReasonDecompressedTooLarge {
				t.Fatalf("s2 decode error %v has reason %q", err, reason)
			}
			if int64(len(out)) > lim.MaxDecompressed {
				t.Fatalf("s2 decode gave %d bytes, over the limit", len(out))
			}
			if err == nil {
				if again := encode(t, S2, out); !bytes.Equal(mustDecode(t, again, lim), out) {
					t.Fatal("s2 round trip of decoded bytes mismatch")
				}
			}
		}
		info, err := Validate(payload, lim)
		if Detect(payload) == Plain {
			differential(t, payload, lim, info, err)
		}
		// With a ScrubCheck (deepScrub in place of deep) the pass
		// accepts and refuses the same, with the same error and Info.
		events := 0
		sinfo, serr := ValidateEvents(payload, lim, &EventHook{Scrub: fuzzScrub, OnEvent: func(EventMeta) { events++ }})
		if fmt.Sprint(serr) != fmt.Sprint(err) || sinfo != info || err == nil && events != info.EventCount {
			t.Fatalf("with a ScrubCheck: %+v, %v, %d events; without: %+v, %v", sinfo, serr, events, info, err)
		}
		// ValidateDecode too, and it hands back the decoded events.
		dinfo, decoded, derr := ValidateDecode(payload, lim, &EventHook{Scrub: fuzzScrub}, make([]byte, 0, 64))
		if fmt.Sprint(derr) != fmt.Sprint(err) || dinfo != info || (derr == nil) != (decoded != nil) {
			t.Fatalf("ValidateDecode: %+v, %v, %d bytes; ValidateEvents: %+v, %v", dinfo, derr, len(decoded), info, err)
		}
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
			if !bytes.Equal(decoded, raw) {
				t.Fatalf("ValidateDecode gave %d bytes, Decode %d", len(decoded), len(raw))
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
			compressed := c.compress(payload)
			cinfo, cerr := Validate(compressed, lim)
			if _, decoded, derr := ValidateDecode(compressed, lim, nil, nil); fmt.Sprint(derr) != fmt.Sprint(cerr) || cerr == nil && !bytes.Equal(decoded, payload) {
				t.Fatalf("%s: ValidateDecode: %v, %d bytes; Validate: %v", enc, derr, len(decoded), cerr)
			}
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

// fuzzScrub is a ScrubCheck with every check on.
var fuzzScrub = &ScrubCheck{
	AtSign: true, TextKey: true, MinValue: 3,
	Value:    func(s []byte) bool { return bytes.Count(s, []byte("7")) > 2 },
	AttrName: func(name []byte) bool { return string(name) == "value" },
}

// mustDecode decodes an s2 block made by CompressS2.
func mustDecode(t *testing.T, data []byte, lim Limits) []byte {
	out, err := Decode(S2, data, lim.MaxDecompressed)
	if err != nil {
		t.Fatalf("s2 decode of CompressS2 output: %v", err)
	}
	return out
}

// differential compares Validate's verdict on a plain payload with
// oracle's, and with the scanner fed the same bytes in small chunks.
func differential(t *testing.T, raw []byte, lim Limits, info Info, err error) {
	t.Helper()
	reason, _ := Reason(err)
	if len(raw) > 0 && int64(len(raw)) <= lim.MaxDecompressed {
		want, wantReasons, sure := oracle(raw, lim.MaxDepth)
		if !slices.Contains(wantReasons, reason) && (sure || reason == "") {
			t.Fatalf("reason %q (%v), oracle says %q", reason, err, wantReasons)
		}
		if sure && err == nil {
			want.Encoding, want.RawSize = Plain, int64(len(raw))
			if diff := cmp.Diff(want, info); diff != "" {
				t.Fatalf("Info differs from encoding/json's (-json +Validate):\n%s", diff)
			}
		}
		if err == nil && !json.Valid(raw) {
			t.Fatal("accepted, but json.Valid refuses it")
		}
	}
	for _, chunk := range []int{1, 3, 8, 61} {
		cinfo, cerr := scanChunks(raw, lim, chunk)
		creason, _ := Reason(cerr)
		if creason != reason || cinfo != info {
			t.Fatalf("in chunks of %d: %+v, %v; whole: %+v, %v", chunk, cinfo, cerr, info, err)
		}
		var ie, cie *InvalidError
		if errors.As(err, &ie) && errors.As(cerr, &cie) && (ie.Offset != cie.Offset || ie.Path != cie.Path) {
			t.Fatalf("in chunks of %d: error at %d %s; whole: at %d %s", chunk, cie.Offset, cie.Path, ie.Offset, ie.Path)
		}
	}
}

// scanChunks is Validate for a plain payload, fed to the scanner chunk
// bytes at a time as the decompressors do.
func scanChunks(raw []byte, lim Limits, chunk int) (Info, error) {
	lim = lim.withDefaults()
	if len(raw) == 0 {
		return Info{}, invalid(ReasonEmptyPayload, nil)
	}
	if int64(len(raw)) > lim.MaxPayload {
		return Info{}, invalid(ReasonPayloadTooLarge, nil)
	}
	if int64(len(raw)) > lim.MaxDecompressed {
		return Info{}, invalid(ReasonDecompressedTooLarge, nil)
	}
	info := Info{Encoding: Plain, RawSize: int64(len(raw))}
	var s scanner
	s.reset(lim.MaxDepth, nil, &info)
	for i := 0; i < len(raw); i += chunk {
		end := min(i+chunk, len(raw))
		s.feed(raw[i:end:end])
	}
	if err := s.finish(); err != nil {
		return Info{}, err
	}
	return info, nil
}

// oracle judges a plain payload with encoding/json: the reasons Validate
// may give (none for a valid payload) and, when valid, its metadata. It is
// unsure about events long enough and escaped enough that the 128-byte cap
// on a type or timestamp's text may apply to escaped text whose value is
// shorter.
func oracle(raw []byte, maxDepth int) (info Info, reasons []string, sure bool) {
	if len(bytes.Trim(raw, " \t\r\n")) == 0 {
		return Info{}, []string{ReasonEmptyPayload}, true
	}
	depth := jsonDepth(raw)
	if !json.Valid(raw) {
		if depth > maxDepth {
			return Info{}, []string{ReasonNotJSON, ReasonTooDeep}, true
		}
		return Info{}, []string{ReasonNotJSON}, true
	}
	if depth > maxDepth {
		return Info{}, []string{ReasonTooDeep}, true
	}
	if bytes.Trim(raw, " \t\r\n")[0] != '[' {
		return Info{}, []string{ReasonNotArray}, true
	}
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil {
		panic(err) // valid JSON array
	}
	sure = true
	bad := []string{ReasonBadEvent}
	for _, ev := range events {
		if ev[0] != '{' {
			return Info{}, bad, sure
		}
		if len(ev) > maxLit && bytes.IndexByte(ev, '\\') >= 0 {
			sure = false
		}
		var e struct {
			Type      json.Number `json:"type"`
			Timestamp json.Number `json:"timestamp"`
		}
		if err := json.Unmarshal(ev, &e); err != nil || len(e.Type) > maxLit || len(e.Timestamp) > maxLit {
			return Info{}, bad, sure
		}
		if e.Type == "2" {
			info.HasFullSnapshot = true
		} else if _, err := strconv.ParseInt(string(e.Type), 10, 64); e.Type != "" && err != nil {
			return Info{}, bad, sure
		}
		if e.Timestamp != "" {
			ts, ok := millis(string(e.Timestamp))
			if !ok {
				return Info{}, bad, sure
			}
			if info.FirstTS == 0 || ts < info.FirstTS {
				info.FirstTS = ts
			}
			info.LastTS = max(info.LastTS, ts)
		}
		info.EventCount++
	}
	return info, []string{""}, sure
}

// jsonDepth returns the deepest nesting of brackets outside strings.
func jsonDepth(raw []byte) int {
	d, deepest, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			d++
			deepest = max(deepest, d)
		case c == ']' || c == '}':
			d--
		}
	}
	return deepest
}
