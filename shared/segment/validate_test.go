package segment

import (
	"bytes"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

var encodings = []Encoding{Plain, Gzip, Zlib, Zstd}

// events is a small recording whose metadata is known: out of timestamp
// order, one timestamp in fractional seconds, one event without timestamp.
const events = ` [
	{"type": 4, "timestamp": 1760000000500, "data": {"href": "https://example.com/", "width": 1280, "height": 720}},
	{"type": 2, "timestamp": 1760000000400, "data": {"node": {"type": 0, "childNodes": [{"type": 2, "tagName": "html", "timestamp": 1}]}}},
	{"type": 3, "timestamp": 1760000001.2345, "data": {"source": 1, "positions": [{"x": 1, "y": 2, "timeOffset": 0}]}},
	{"type": 5, "data": {"tag": "custom", "payload": {"timestamp": "not ours"}}},
	{"type": 3, "timestamp": 1760000000999.9, "data": {"source": 3, "id": 1, "x": 0, "y": 10}}
]
`

var eventsInfo = Info{EventCount: 5, FirstTS: 1760000000400, LastTS: 1760000001235, HasFullSnapshot: true}

// TestValidateEncodings checks that every encoding of the same events gives
// the same metadata.
func TestValidateEncodings(t *testing.T) {
	rec, recInfo := recording(200<<10, 1)
	for _, tc := range []struct {
		name string
		raw  []byte
		want Info
	}{
		{"events", []byte(events), eventsInfo},
		{"recording", rec, recInfo},
		{"empty array", []byte("[]"), Info{}},
	} {
		for _, enc := range encodings {
			t.Run(tc.name+"/"+string(enc), func(t *testing.T) {
				payload := encode(t, enc, tc.raw)
				if got := Detect(payload); got != enc {
					t.Fatalf("Detect = %q, want %q", got, enc)
				}
				got, err := Validate(payload, Limits{})
				if err != nil {
					t.Fatal(err)
				}
				want := tc.want
				want.Encoding = enc
				want.RawSize = int64(len(tc.raw))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("Info mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestValidate(t *testing.T) {
	small := Limits{MaxPayload: 1 << 10, MaxDecompressed: 1 << 10}
	plain := func(s string) []byte { return []byte(s) }
	gz := func(s string) []byte { return encode(t, Gzip, []byte(s)) }
	zl := func(s string) []byte { return encode(t, Zlib, []byte(s)) }
	zs := func(s string) []byte { return encode(t, Zstd, []byte(s)) }
	ok := func(count int, first, last int64, full bool) Info {
		return Info{EventCount: count, FirstTS: first, LastTS: last, HasFullSnapshot: full}
	}
	// An array of exactly 1 KiB.
	exact := "[" + strings.Repeat(" ", 1<<10-2) + "]"

	gzEvents := gz(events)
	gzBadCRC := bytes.Clone(gzEvents)
	gzBadCRC[len(gzBadCRC)-8] ^= 0xff
	zsEvents := zs(events)
	zsBadBody := bytes.Clone(zsEvents)
	zsBadBody[len(zsBadBody)/2] ^= 0xff
	// Streams that state no size, with an 8 MiB window (the encoder's
	// default) and with a 64 MiB one.
	rec, recInfo := recording(300<<10, 6)
	zs8M := zstdStream(t, rec)
	zs64M := zstdStream(t, rec, zstd.WithWindowSize(64<<20))

	tests := []struct {
		name    string
		payload []byte
		lim     Limits
		want    Info // Encoding and RawSize are not compared
		reason  string
	}{
		// Metadata.
		{"milliseconds", plain(`[{"type":3,"timestamp":1760000000123}]`), Limits{}, ok(1, 1760000000123, 1760000000123, false), ""},
		{"integer seconds", plain(`[{"type":3,"timestamp":1760000000}]`), Limits{}, ok(1, 1760000000000, 1760000000000, false), ""},
		{"fractional seconds round", plain(`[{"timestamp":1760000000.0004},{"timestamp":1760000000.0006}]`), Limits{}, ok(2, 1760000000000, 1760000000001, false), ""},
		{"fractional milliseconds truncate", plain(`[{"timestamp":1760000000123.9}]`), Limits{}, ok(1, 1760000000123, 1760000000123, false), ""},
		{"exponent", plain(`[{"timestamp":1.76e12},{"timestamp":1.76e9}]`), Limits{}, ok(2, 1760000000000, 1760000000000, false), ""},
		{"seconds threshold", plain(`[{"timestamp":99999999999},{"timestamp":100000000000}]`), Limits{}, ok(2, 100000000000, 99999999999000, false), ""},
		{"min and max, not first and last", plain(`[{"timestamp":1760000000300},{"timestamp":1760000000100},{"timestamp":1760000000200}]`), Limits{}, ok(3, 1760000000100, 1760000000300, false), ""},
		{"mixed units", plain(`[{"timestamp":1760000005},{"timestamp":1760000000100}]`), Limits{}, ok(2, 1760000000100, 1760000005000, false), ""},
		{"no timestamps", plain(`[{"type":2},{"type":3}]`), Limits{}, ok(2, 0, 0, true), ""},
		{"null type and timestamp", plain(`[{"type":null,"timestamp":null}]`), Limits{}, ok(1, 0, 0, false), ""},
		{"full snapshot", plain(`[{"type":4},{"type":2}]`), Limits{}, ok(2, 0, 0, true), ""},
		{"no full snapshot", plain(`[{"type":3},{"type":4},{"type":0},{"type":6}]`), Limits{}, ok(4, 0, 0, false), ""},
		{"nested type 2 is not an event", plain(`[{"type":3,"data":{"type":2}}]`), Limits{}, ok(1, 0, 0, false), ""},
		{"empty objects", plain(`[{},{}]`), Limits{}, ok(2, 0, 0, false), ""},
		{"empty array", plain(`[]`), Limits{}, ok(0, 0, 0, false), ""},
		{"surrounding whitespace", plain(" \t\r\n[ {} ] \n"), Limits{}, ok(1, 0, 0, false), ""},
		{"exactly at limits", plain(exact), small, Info{}, ""},
		{"gzip exactly at decompressed limit", gz(exact), Limits{MaxDecompressed: 1 << 10}, Info{}, ""},
		{"zlib exactly at decompressed limit", zl(exact), Limits{MaxDecompressed: 1 << 10}, Info{}, ""},
		{"zstd exactly at decompressed limit", zs(exact), Limits{MaxDecompressed: 1 << 10}, Info{}, ""},
		{"zstd window larger than limit", zs8M, Limits{MaxDecompressed: 1 << 20}, recInfo, ""},
		{"zstd 64 MiB window", zs64M, Limits{}, recInfo, ""},
		{"concatenated gzip members", append(gz(`[{"type":2},`), gz(`{"type":3}]`)...), Limits{}, ok(2, 0, 0, true), ""},
		{"concatenated zstd frames", append(zs(`[{"type":2},`), zs(`{"type":3}]`)...), Limits{}, ok(2, 0, 0, true), ""},

		// Size.
		{"empty", nil, Limits{}, Info{}, ReasonEmptyPayload},
		{"whitespace only", plain(" \n\t\r "), Limits{}, Info{}, ReasonEmptyPayload},
		{"gzip of nothing", gz(""), Limits{}, Info{}, ReasonEmptyPayload},
		{"zstd of whitespace", zs("  \n"), Limits{}, Info{}, ReasonEmptyPayload},
		{"payload too large", plain(exact + " "), small, Info{}, ReasonPayloadTooLarge},
		{"payload too large by default", append(plain("["), bytes.Repeat([]byte(" "), 10<<20)...), Limits{}, Info{}, ReasonPayloadTooLarge},
		{"plain over decompressed limit", plain(exact + " "), Limits{MaxDecompressed: 1 << 10}, Info{}, ReasonDecompressedTooLarge},
		{"gzip one byte over", gz(exact + " "), Limits{MaxDecompressed: 1 << 10}, Info{}, ReasonDecompressedTooLarge},
		{"zlib one byte over", zl(exact + " "), Limits{MaxDecompressed: 1 << 10}, Info{}, ReasonDecompressedTooLarge},
		{"zstd one byte over", zs(exact + " "), Limits{MaxDecompressed: 1 << 10}, Info{}, ReasonDecompressedTooLarge},
		{"zstd stream one byte over", zstdStream(t, []byte(exact+" ")), Limits{MaxDecompressed: 1 << 10}, Info{}, ReasonDecompressedTooLarge},
		{"zstd window above 8 MiB and limit", zs64M, Limits{MaxDecompressed: 1 << 20}, Info{}, ReasonDecompressedTooLarge},
		{"zstd limit not a power of two", zs(exact), Limits{MaxDecompressed: 1000}, Info{}, ReasonDecompressedTooLarge},

		// Compression.
		{"truncated gzip", gzEvents[:len(gzEvents)/2], Limits{}, Info{}, ReasonBadCompression},
		{"gzip without trailer", gzEvents[:len(gzEvents)-8], Limits{}, Info{}, ReasonBadCompression},
		{"gzip bad checksum", gzBadCRC, Limits{}, Info{}, ReasonBadCompression},
		{"gzip with trailing garbage", append(bytes.Clone(gzEvents), "garbage"...), Limits{}, Info{}, ReasonBadCompression},
		{"garbage with gzip magic", plain("\x1f\x8bnot really gzip at all"), Limits{}, Info{}, ReasonBadCompression},
		{"gzip magic only", plain("\x1f\x8b"), Limits{}, Info{}, ReasonBadCompression},
		{"truncated zlib", zl(events)[:40], Limits{}, Info{}, ReasonBadCompression},
		{"zlib with trailing garbage", append(zl(events), "garbage"...), Limits{}, Info{}, ReasonBadCompression},
		{"garbage with zlib magic", plain("\x78\x9cnot really zlib"), Limits{}, Info{}, ReasonBadCompression},
		{"truncated zstd", zsEvents[:len(zsEvents)/2], Limits{}, Info{}, ReasonBadCompression},
		{"corrupt zstd", zsBadBody, Limits{}, Info{}, ReasonBadCompression},
		{"garbage with zstd magic", plain("\x28\xb5\x2f\xfdnot really zstd"), Limits{}, Info{}, ReasonBadCompression},
		{"zstd with trailing garbage", append(bytes.Clone(zsEvents), "garbage"...), Limits{}, Info{}, ReasonBadCompression},
		{"gzip of broken json then corrupt", append(gz(`[{"a":`)[:20], 0xff, 0xff), Limits{}, Info{}, ReasonBadCompression},

		// JSON.
		{"not json", plain("hello"), Limits{}, Info{}, ReasonNotJSON},
		{"byte order mark", plain("\ufeff[]"), Limits{}, Info{}, ReasonNotJSON},
		{"truncated array", plain(`[{"type":2},`), Limits{}, Info{}, ReasonNotJSON},
		{"unclosed array", plain(`[{"type":2}`), Limits{}, Info{}, ReasonNotJSON},
		{"truncated object", plain(`[{"type":2`), Limits{}, Info{}, ReasonNotJSON},
		{"trailing comma", plain(`[{},]`), Limits{}, Info{}, ReasonNotJSON},
		{"missing comma", plain(`[{} {}]`), Limits{}, Info{}, ReasonNotJSON},
		{"trailing garbage", plain(`[{}] garbage`), Limits{}, Info{}, ReasonNotJSON},
		{"second array", plain(`[] []`), Limits{}, Info{}, ReasonNotJSON},
		{"extra bracket", plain(`[{}]]`), Limits{}, Info{}, ReasonNotJSON},
		{"mismatched bracket", plain(`[{}}`), Limits{}, Info{}, ReasonNotJSON},
		{"gzip of not json", gz("hello"), Limits{}, Info{}, ReasonNotJSON},
		{"zstd of trailing garbage", zs(`[] x`), Limits{}, Info{}, ReasonNotJSON},
		{"json object", plain(`{"type":2,"timestamp":1}`), Limits{}, Info{}, ReasonNotArray},
		{"json string", plain(`"[]"`), Limits{}, Info{}, ReasonNotArray},
		{"json number", plain(`42`), Limits{}, Info{}, ReasonNotArray},
		{"json null", plain(`null`), Limits{}, Info{}, ReasonNotArray},
		{"json true", plain(`true`), Limits{}, Info{}, ReasonNotArray},
		{"zlib of object", zl(`{}`), Limits{}, Info{}, ReasonNotArray},

		// Events.
		{"array of numbers", plain(`[1,2,3]`), Limits{}, Info{}, ReasonBadEvent},
		{"array of strings", plain(`["a"]`), Limits{}, Info{}, ReasonBadEvent},
		{"array of arrays", plain(`[[]]`), Limits{}, Info{}, ReasonBadEvent},
		{"null event", plain(`[{}, null]`), Limits{}, Info{}, ReasonBadEvent},
		{"bad event after good", plain(`[{"type":2},{"type":3},true]`), Limits{}, Info{}, ReasonBadEvent},
		{"type not a number", plain(`[{"type":"full"}]`), Limits{}, Info{}, ReasonBadEvent},
		{"type bool", plain(`[{"type":true}]`), Limits{}, Info{}, ReasonBadEvent},
		{"type fractional", plain(`[{"type":2.5}]`), Limits{}, Info{}, ReasonBadEvent},
		{"type object", plain(`[{"type":{}}]`), Limits{}, Info{}, ReasonBadEvent},
		{"timestamp not a number", plain(`[{"timestamp":"yesterday"}]`), Limits{}, Info{}, ReasonBadEvent},
		{"timestamp zero", plain(`[{"timestamp":0}]`), Limits{}, Info{}, ReasonBadEvent},
		{"timestamp negative", plain(`[{"timestamp":-1760000000000}]`), Limits{}, Info{}, ReasonBadEvent},
		{"timestamp rounds to zero", plain(`[{"timestamp":0.0001}]`), Limits{}, Info{}, ReasonBadEvent},
		{"timestamp overflows int64", plain(`[{"timestamp":9223372036854775808}]`), Limits{}, Info{}, ReasonBadEvent},
		{"timestamp huge float", plain(`[{"timestamp":1e400}]`), Limits{}, Info{}, ReasonBadEvent},
		{"gzip of numbers", gz(`[1]`), Limits{}, Info{}, ReasonBadEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Validate(tt.payload, tt.lim)
			checkValidate(t, tt.payload, tt.lim, got, err, tt.want, tt.reason)
		})
	}
}

// checkValidate compares Validate's result with the wanted Info (Encoding
// and RawSize taken from the payload) or reason.
func checkValidate(t *testing.T, payload []byte, lim Limits, got Info, err error, want Info, wantReason string) {
	t.Helper()
	reason, invalid := Reason(err)
	if err != nil && !invalid {
		t.Fatalf("error %v is not an *InvalidError", err)
	}
	if reason != wantReason {
		t.Fatalf("reason = %q (err %v), want %q", reason, err, wantReason)
	}
	if err != nil {
		if diff := cmp.Diff(Info{}, got); diff != "" {
			t.Errorf("Info with an error is not zero (-want +got):\n%s", diff)
		}
		return
	}
	want.Encoding = Detect(payload)
	raw, derr := Decode(want.Encoding, payload, lim.withDefaults().MaxDecompressed)
	if derr != nil {
		t.Fatalf("Decode of a valid payload: %v", derr)
	}
	want.RawSize = int64(len(raw))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Info mismatch (-want +got):\n%s", diff)
	}
}

// TestValidateBombs checks that payloads decompressing to far more than the
// limit are refused at the limit, without holding what they expand to.
func TestValidateBombs(t *testing.T) {
	const size = 100 << 20 // uncompressed
	lim := Limits{MaxDecompressed: 64 << 20}
	tests := []struct {
		name     string
		payload  func(testing.TB) []byte
		lim      Limits
		maxAlloc uint64
	}{
		// Zeros are not JSON: the stream is still decompressed to the
		// limit so that the bomb is reported as one.
		{"gzip zeros", func(tb testing.TB) []byte { return bomb(tb, Gzip, "", 0, size, "") }, lim, 4 << 20},
		{"zlib zeros", func(tb testing.TB) []byte { return bomb(tb, Zlib, "", 0, size, "") }, lim, 4 << 20},
		// Whitespace in an array, or one huge string, is valid JSON up to
		// the limit; the scanner holds none of it.
		{"gzip whitespace array", func(tb testing.TB) []byte { return bomb(tb, Gzip, "[", ' ', size, "]") }, lim, 4 << 20},
		{"gzip huge string", func(tb testing.TB) []byte { return bomb(tb, Gzip, `[{"a":"`, 'a', size, `"}]`) }, lim, 4 << 20},
		// Compress states the content size: refused from the header.
		{"zstd with content size", func(tb testing.TB) []byte { return Compress(make([]byte, size)) }, lim, 1 << 20},
		// A stream does not: refused while decoding, at the limit. The
		// decoder keeps a window of history (4 MiB at this encoder level).
		{"zstd stream", func(tb testing.TB) []byte { return bomb(tb, Zstd, "[", ' ', size, "]") }, lim, 12 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := tt.payload(t)
			if len(payload) > 1<<20 {
				t.Fatalf("bomb is %d bytes compressed; want a real bomb", len(payload))
			}
			var got Info
			var err error
			alloc := allocated(func() { got, err = Validate(payload, tt.lim) })
			checkValidate(t, payload, tt.lim, got, err, Info{}, ReasonDecompressedTooLarge)
			t.Logf("%d-byte bomb; Validate allocated %d bytes", len(payload), alloc)
			if alloc > tt.maxAlloc {
				t.Errorf("Validate allocated %d bytes, want at most %d", alloc, tt.maxAlloc)
			}
		})
	}
}

// allocated returns how many bytes f allocated on the heap. Other
// goroutines' allocations count too, so keep the bounds loose.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestValidateConcurrent exercises the shared decoders and pools from many
// goroutines; run it with -race.
func TestValidateConcurrent(t *testing.T) {
	raw, want := recording(64<<10, 2)
	payloads := map[Encoding][]byte{}
	for _, enc := range encodings {
		payloads[enc] = encode(t, enc, raw)
	}
	want.RawSize = int64(len(raw))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	deadline := time.Now().Add(500 * time.Millisecond)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline) || i < 8; i++ {
				enc := encodings[(g+i)%len(encodings)]
				info, err := Validate(payloads[enc], Limits{})
				if err != nil {
					errs <- err
					return
				}
				w := want
				w.Encoding = enc
				if diff := cmp.Diff(w, info); diff != "" {
					t.Errorf("%s: Info mismatch (-want +got):\n%s", enc, diff)
					return
				}
				out, err := Decode(enc, payloads[enc], 0)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(out, raw) {
					t.Errorf("%s: Decode does not round-trip", enc)
					return
				}
				if i%4 == 0 {
					if _, err := Validate(payloads[enc][:len(payloads[enc])/2], Limits{}); err == nil && enc != Plain {
						t.Errorf("%s: truncated payload validates", enc)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestValidateDeepSnapshot: a full snapshot of a deeply nested DOM is
// deeper than the fast parser accepts; it must still validate (through the
// streaming fallback), and a broken deep one must still be refused.
func TestValidateDeepSnapshot(t *testing.T) {
	const depth = 400
	node := strings.Repeat(`{"childNodes":[`, depth) + strings.Repeat(`]}`, depth)
	good := []byte(`[{"type":2,"timestamp":1700000000000,"data":{"node":` + node + `}},{"type":3,"timestamp":1700000001000}]`)
	info, err := Validate(good, Limits{})
	if err != nil {
		t.Fatalf("deep snapshot refused: %v", err)
	}
	want := Info{Encoding: Plain, RawSize: int64(len(good)), EventCount: 2, FirstTS: 1700000000000, LastTS: 1700000001000, HasFullSnapshot: true}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("Info (-want +got):\n%s", diff)
	}
	bad := bytes.Replace(good, []byte(`]}]}`), []byte(`]]}}`), 1)
	if _, err := Validate(bad, Limits{}); err == nil {
		t.Error("broken deep snapshot accepted")
	} else if r, _ := Reason(err); r != ReasonNotJSON {
		t.Errorf("broken deep snapshot: reason %q, want %q", r, ReasonNotJSON)
	}
}
