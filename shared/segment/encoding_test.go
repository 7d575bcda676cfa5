package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    Encoding
	}{
		{"empty", nil, Plain},
		{"json", []byte(`[{"type":4}]`), Plain},
		{"json with whitespace", []byte(" \n[]"), Plain},
		{"gzip", encode(t, Gzip, []byte("[]")), Gzip},
		{"gzip magic only", []byte{0x1f, 0x8b}, Gzip},
		{"half gzip magic", []byte{0x1f}, Plain},
		{"zlib default", []byte{0x78, 0x9c}, Zlib},
		{"zlib fastest", []byte{0x78, 0x01}, Zlib},
		{"zlib best", []byte{0x78, 0xda}, Zlib},
		{"zlib level 2-5", []byte{0x78, 0x5e}, Zlib},
		{"zlib written", encode(t, Zlib, []byte("[]")), Zlib},
		{"0x78 failing header check", []byte{0x78, 0x9d}, Plain},
		{"zlib check but window not 32K", []byte{0x68, 0x81}, Plain},
		{"zstd", Compress([]byte("[]")), Zstd},
		{"zstd magic only", []byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
		{"short zstd magic", []byte{0x28, 0xb5, 0x2f}, Plain},
		{"zstd skippable frame is not ours", []byte{0x50, 0x2a, 0x4d, 0x18}, Plain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Detect(tt.payload); got != tt.want {
				t.Errorf("Detect(% x) = %q, want %q", tt.payload, got, tt.want)
			}
		})
	}
}

func TestEncodingValid(t *testing.T) {
	for _, enc := range append(encodings, S2) {
		if !enc.Valid() {
			t.Errorf("%q.Valid() = false", enc)
		}
	}
	for _, enc := range []Encoding{"", "br", "GZIP", "deflate"} {
		if enc.Valid() {
			t.Errorf("%q.Valid() = true", enc)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	rec, _ := recording(300<<10, 3)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"recording", rec},
		{"events", []byte(events)},
		{"one byte", []byte("x")},
		{"empty", []byte{}},
	} {
		for _, enc := range encodings {
			t.Run(tc.name+"/"+string(enc), func(t *testing.T) {
				data := encode(t, enc, tc.raw)
				got, err := Decode(enc, data, int64(len(tc.raw)))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.raw, got, cmpBytes); diff != "" {
					t.Errorf("round trip mismatch (-want +got):\n%.2000s", diff)
				}
			})
		}
	}
	// Streams that do not state their size: the output buffer is guessed,
	// then grown, several times over for the highly compressible ones.
	spaces := append(append([]byte("["), bytes.Repeat([]byte(" "), 3<<20)...), ']')
	for _, tc := range []struct {
		name string
		raw  []byte
		max  int64
	}{
		{"recording", rec, 0},
		{"recording at limit", rec, int64(len(rec))},
		{"spaces", spaces, 0},
		{"spaces at limit", spaces, int64(len(spaces))},
		{"two frames", nil, 0},
	} {
		t.Run("zstd stream/"+tc.name, func(t *testing.T) {
			data := zstdStream(t, tc.raw)
			if tc.raw == nil {
				tc.raw = append(bytes.Clone(rec), spaces...)
				data = append(zstdStream(t, rec), zstdStream(t, spaces)...)
			}
			got, err := Decode(Zstd, data, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.raw) {
				t.Error("round trip mismatch")
			}
			if tc.max > 0 {
				if _, err := Decode(Zstd, data, tc.max-1); err == nil {
					t.Error("no error one byte under the size")
				}
			}
		})
	}
}

// cmpBytes treats nil and empty byte slices alike.
var cmpBytes = cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })

func TestCompress(t *testing.T) {
	rec, _ := recording(1<<20, 4)
	got := Compress(rec)
	if Detect(got) != Zstd {
		t.Fatalf("Compress output is detected as %q", Detect(got))
	}
	if len(got)*4 > len(rec) {
		t.Errorf("Compress made %d bytes of %d; want at least 4:1 on a recording", len(got), len(rec))
	}
	if cap(got) > len(got)+len(got)/8+64 {
		t.Errorf("Compress returned cap %d for len %d; want an exact-size buffer", cap(got), len(got))
	}
	if again := Compress(rec); !bytes.Equal(again, got) {
		t.Error("Compress is not deterministic")
	}
	if empty := Compress(nil); Detect(empty) != Zstd {
		t.Errorf("Compress(nil) = % x, want a zstd frame", empty)
	}
}

func TestDecodeErrors(t *testing.T) {
	raw := []byte(events)
	gz := encode(t, Gzip, raw)
	gzLying := bytes.Clone(gz) // trailer claims 4 GiB
	binary.LittleEndian.PutUint32(gzLying[len(gzLying)-4:], 0xffffffff)
	const limit = 1 << 20
	const size = 100 << 20
	tests := []struct {
		name     string
		enc      Encoding
		data     []byte
		max      int64
		reason   string // "" with wantErr: a plain error
		wantErr  bool
		maxAlloc uint64
	}{
		{"plain over limit", Plain, raw, int64(len(raw)) - 1, ReasonDecompressedTooLarge, true, 1 << 20},
		{"gzip over limit", Gzip, gz, int64(len(raw)) - 1, ReasonDecompressedTooLarge, true, 1 << 20},
		{"zlib over limit", Zlib, encode(t, Zlib, raw), int64(len(raw)) - 1, ReasonDecompressedTooLarge, true, 1 << 20},
		{"zstd over limit", Zstd, encode(t, Zstd, raw), int64(len(raw)) - 1, ReasonDecompressedTooLarge, true, 1 << 20},
		{"gzip trailer lies about size", Gzip, gzLying, 0, ReasonBadCompression, true, 1 << 20},
		{"gzip bomb", Gzip, bomb(t, Gzip, "", 0, size, ""), limit, ReasonDecompressedTooLarge, true, 4 * limit},
		{"zlib bomb", Zlib, bomb(t, Zlib, "", 0, size, ""), limit, ReasonDecompressedTooLarge, true, 4 * limit},
		{"zstd bomb with content size", Zstd, Compress(make([]byte, size)), limit, ReasonDecompressedTooLarge, true, 1 << 20},
		{"zstd stream bomb", Zstd, bomb(t, Zstd, "", 0, size, ""), limit, ReasonDecompressedTooLarge, true, 5 * limit / 2},
		// A stream that states no size is decoded again in ever larger
		// buffers, which in all comes to less than 2.5 times the limit.
		{"zstd stream bomb default limit", Zstd, bomb(t, Zstd, "", 0, size, ""), 0, ReasonDecompressedTooLarge, true, 5 * DefaultMaxDecompressed / 2},
		{"truncated gzip", Gzip, gz[:len(gz)-3], 0, ReasonBadCompression, true, 1 << 20},
		{"gzip as zlib", Zlib, gz, 0, ReasonBadCompression, true, 1 << 20},
		{"zlib with trailing garbage", Zlib, append(encode(t, Zlib, raw), 0), 0, ReasonBadCompression, true, 1 << 20},
		{"gzip with trailing garbage", Gzip, append(bytes.Clone(gz), 0), 0, ReasonBadCompression, true, 1 << 20},
		{"zstd with trailing garbage", Zstd, append(encode(t, Zstd, raw), 0), 0, ReasonBadCompression, true, 1 << 20},
		{"plain as zstd", Zstd, raw, 0, ReasonBadCompression, true, 1 << 20},
		{"unknown encoding", "br", raw, 0, "", true, 1 << 20},
		{"empty encoding", "", raw, 0, "", true, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			var err error
			alloc := allocated(func() { out, err = Decode(tt.enc, tt.data, tt.max) })
			if (err != nil) != tt.wantErr {
				t.Fatalf("Decode error = %v, want error %v", err, tt.wantErr)
			}
			reason, _ := Reason(err)
			if reason != tt.reason {
				t.Errorf("reason = %q (err %v), want %q", reason, err, tt.reason)
			}
			if err != nil && out != nil {
				t.Errorf("Decode returned %d bytes with error", len(out))
			}
			t.Logf("Decode allocated %d bytes", alloc)
			if alloc > tt.maxAlloc {
				t.Errorf("Decode allocated %d bytes, want at most %d", alloc, tt.maxAlloc)
			}
		})
	}
}

// TestS2 checks the encoding only Pack writes (rewritten events): it round
// trips through Decode and DecodeStored (into a reused buffer when it has
// room), is never detected in a payload, and is compact on recordings.
func TestS2(t *testing.T) {
	rec, _ := recording(300<<10, 3)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{{"recording", rec}, {"events", []byte(events)}, {"one byte", []byte("x")}, {"empty", []byte{}}} {
		t.Run(tc.name, func(t *testing.T) {
			data := encode(t, S2, tc.raw)
			if cap(data) > len(data)+len(data)/8+64 {
				t.Errorf("CompressS2 returned cap %d for len %d; want an exact-size buffer", cap(data), len(data))
			}
			if Detect(data) == S2 {
				t.Error("an s2 block was detected as s2; no payload may arrive in it")
			}
			got, err := Decode(S2, data, int64(len(tc.raw)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.raw) {
				t.Error("Decode round trip mismatch")
			}
			buf := make([]byte, 0, len(tc.raw)+100)
			got, err = DecodeStored(S2, data, buf, int64(len(tc.raw)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.raw) {
				t.Error("DecodeStored round trip mismatch")
			}
			if len(tc.raw) > 0 && &got[0] != &buf[:1][0] {
				t.Error("DecodeStored did not decode into the buffer it was given")
			}
			if len(tc.raw) > 1 { // a limit of 0 is the default
				if _, err := Decode(S2, data, int64(len(tc.raw))-1); err == nil {
					t.Error("no error one byte under the size")
				}
			}
		})
	}
	if got := encode(t, S2, rec); len(got)*4 > len(rec) {
		t.Errorf("CompressS2 made %d bytes of %d; want at least 4:1 on a recording", len(got), len(rec))
	}
}

// TestS2Adversarial feeds Decode and DecodeStored s2 blocks that lie about
// their size, are cut short or corrupted: each is an *InvalidError, and a
// claimed size over the limit is refused before any allocation.
func TestS2Adversarial(t *testing.T) {
	raw := []byte(events)
	good := encode(t, S2, raw)
	const limit = 1 << 20
	huge := binary.AppendUvarint(nil, 0xffffffff) // 4 GiB claimed
	huge = append(huge, good[1:]...)
	over := binary.AppendUvarint(nil, limit+1)
	over = append(over, good[1:]...)
	// A block whose header claims the limit exactly but holds a few bytes:
	// decoding it allocates the claim and then fails.
	short := binary.AppendUvarint(nil, limit)
	short = append(short, good[len(good)-8:]...)
	corrupt := bytes.Clone(good)
	for i := len(corrupt) / 2; i < len(corrupt); i++ {
		corrupt[i] ^= 0xa5
	}
	tests := []struct {
		name     string
		data     []byte
		reason   string
		maxAlloc uint64
	}{
		{"claims 4 GiB", huge, ReasonDecompressedTooLarge, 16 << 10},
		{"claims a byte over the limit", over, ReasonDecompressedTooLarge, 16 << 10},
		{"claims the limit, holds little", short, ReasonBadCompression, limit + 64<<10},
		{"truncated", good[:len(good)-5], ReasonBadCompression, 64 << 10},
		{"header only", good[:1], ReasonBadCompression, 64 << 10},
		{"empty", nil, ReasonBadCompression, 16 << 10},
		{"bad varint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ReasonBadCompression, 16 << 10},
		{"corrupted", corrupt, ReasonBadCompression, 64 << 10},
		{"gzip as s2", encode(t, Gzip, raw), ReasonBadCompression, 64 << 10},
		{"plain as s2", raw, ReasonBadCompression, 64 << 10},
	}
	for _, tt := range tests {
		for _, stored := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stored=%v", tt.name, stored), func(t *testing.T) {
				var out []byte
				var err error
				alloc := allocated(func() {
					if stored {
						out, err = DecodeStored(S2, tt.data, nil, limit)
					} else {
						out, err = Decode(S2, tt.data, limit)
					}
				})
				if reason, _ := Reason(err); reason != tt.reason {
					t.Errorf("reason = %q (err %v), want %q", reason, err, tt.reason)
				}
				if out != nil {
					t.Errorf("returned %d bytes with error", len(out))
				}
				if alloc > tt.maxAlloc {
					t.Errorf("allocated %d bytes, want at most %d", alloc, tt.maxAlloc)
				}
			})
		}
	}
}

func TestDecoderCap(t *testing.T) {
	tests := []struct {
		limit int64
		want  uint64
	}{
		{-1, 8 << 20}, {0, 8 << 20}, {1, 8 << 20}, {1 << 10, 8 << 20}, {8 << 20, 8 << 20}, {8<<20 + 1, 16 << 20},
		{64 << 20, 64 << 20}, {64<<20 - 1, 64 << 20}, {64<<20 + 1, 128 << 20},
		{1 << 40, 1 << 40}, {1<<62 + 1, 1 << 40}, {1<<63 - 1, 1 << 40},
	}
	for _, tt := range tests {
		if got := decoderCap(tt.limit); got != tt.want {
			t.Errorf("decoderCap(%d) = %d, want %d", tt.limit, got, tt.want)
		}
	}
}
