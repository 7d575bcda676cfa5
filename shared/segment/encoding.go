package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Encoding is how a segment payload is compressed. It is stored with each
// segment so that the read path knows how to decode it.
type Encoding string

// The encodings a payload may arrive in. The packer stores Plain payloads
// as Zstd (see Compress) and every other encoding as it came.
const (
	Plain Encoding = "plain"
	Gzip  Encoding = "gzip"
	Zlib  Encoding = "zlib"
	Zstd  Encoding = "zstd"
)

// S2 is an encoding only Pack writes: events an edge rule rewrote (a PII
// scrub's masks) in a segment Pack would otherwise store as the client
// compressed it, compressed with CompressS2 (the s2 block format). No
// payload arrives in it (Detect never reports it); it is read back from a
// segment row's encoding, and compaction re-encodes it to zstd.
const S2 Encoding = "s2"

// Valid reports whether e is one of the known encodings.
func (e Encoding) Valid() bool {
	switch e {
	case Plain, Gzip, Zlib, Zstd, S2:
		return true
	}
	return false
}

// Detect tells the encoding of a payload by its magic bytes. Clients do not
// label their payloads, and no JSON text can start with any of these bytes,
// so anything else is taken to be plain JSON.
func Detect(payload []byte) Encoding {
	switch {
	case len(payload) >= 2 && payload[0] == 0x1f && payload[1] == 0x8b:
		return Gzip
	case len(payload) >= 4 && payload[0] == 0x28 && payload[1] == 0xb5 && payload[2] == 0x2f && payload[3] == 0xfd:
		return Zstd
	case len(payload) >= 2 && payload[0] == 0x78 && (uint16(payload[0])<<8|uint16(payload[1]))%31 == 0:
		// RFC 1950: CMF 0x78 is deflate (CM 8) with a 32 KiB window, and
		// the header check makes CMF<<8|FLG a multiple of 31.
		return Zlib
	}
	return Plain
}

// Decode returns the raw JSON of data encoded with enc, as the read path
// needs it. It refuses to produce more than maxDecompressed bytes (a value
// of zero or less means DefaultMaxDecompressed) and stops decompressing
// soon after, so a bomb costs memory in proportion to the limit, not to
// what it would expand to. For Plain it returns data itself. Corrupt input and oversized output give an *InvalidError
// (ReasonBadCompression, ReasonDecompressedTooLarge); an unknown encoding
// gives a plain error.
func Decode(enc Encoding, data []byte, maxDecompressed int64) ([]byte, error) {
	limit := decompressedLimit(maxDecompressed)
	switch enc {
	case Plain:
		if int64(len(data)) > limit {
			return nil, tooLarge(limit)
		}
		return data, nil
	case Zstd:
		out, err := decodeZstd(zstdDecoder(limit, true), data, nil, limit)
		if err != nil {
			return nil, err
		}
		return out, nil
	case S2:
		return decodeS2(data, nil, limit)
	case Gzip, Zlib:
		f := inflaters.Get().(*inflater)
		defer f.release()
		r, err := f.open(enc, data)
		if err != nil {
			return nil, err
		}
		out, err := readAll(enc, r, limit, sizeHint(enc, data, limit))
		if err != nil {
			return nil, err
		}
		if err := f.trailing(enc); err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("decode: unknown encoding %q", enc)
}

// DecodeStored is Decode for the read path. The segment was read back from
// storage and AES-GCM authenticated it, so a zstd frame's checksum is not
// verified again, and a zstd or s2 segment is decoded into buf's storage
// when it has room (buf's contents are overwritten).
func DecodeStored(enc Encoding, data, buf []byte, maxDecompressed int64) ([]byte, error) {
	limit := decompressedLimit(maxDecompressed)
	switch enc {
	case Zstd:
		out, err := decodeZstd(zstdDecoder(limit, false), data, buf, limit)
		if err != nil {
			return nil, err
		}
		return out, nil
	case S2:
		return decodeS2(data, buf, limit)
	}
	return Decode(enc, data, maxDecompressed)
}

// decodeS2 decodes an s2 block into buf's storage when it has room, else
// into a buffer of exactly the decoded size. The block states that size
// first; a claim over limit is refused before anything is allocated, so
// decoding never costs more than limit bytes of output.
func decodeS2(data, buf []byte, limit int64) ([]byte, error) {
	n, err := s2.DecodedLen(data)
	if err != nil {
		return nil, invalid(ReasonBadCompression, fmt.Errorf("s2 header: %w", err))
	}
	if int64(n) > limit {
		return nil, tooLarge(limit)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	out, err := s2.Decode(buf[:cap(buf)], data)
	if err != nil {
		return nil, invalid(ReasonBadCompression, fmt.Errorf("s2: %w", err))
	}
	return out, nil
}

// CompressS2 returns raw as an s2 block (Decode(S2, ...) reads it back),
// or ok = false when raw is too large for one (over 4 GiB). s2 compresses
// rrweb JSON about three times faster than zstd's fastest level, into
// 35–50% more bytes (README, Edge rules). It is safe for concurrent use.
func CompressS2(raw []byte) (_ []byte, ok bool) {
	n := s2.MaxEncodedLen(len(raw))
	if n < 0 {
		return nil, false
	}
	bp := compressBufs.Get().(*[]byte)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	out := s2.Encode((*bp)[:n], raw)
	res := bytes.Clone(out) // exact size: see Compress
	if cap(*bp) <= maxPooledBuf {
		compressBufs.Put(bp)
	}
	return res, true
}

// Compress returns raw compressed with zstd at the default level. The
// result always is a zstd frame, even for empty input, and Decode(Zstd, ...)
// reads it back. It is safe for concurrent use.
func Compress(raw []byte) []byte {
	bp := compressBufs.Get().(*[]byte)
	out := encoder().EncodeAll(raw, (*bp)[:0])
	// Return an exact-size copy: the packer holds compressed segments in
	// memory until their batch flushes and budgets that memory by len, so
	// a buffer with a large spare capacity would break the budget.
	res := bytes.Clone(out)
	if cap(out) <= maxPooledBuf {
		*bp = out
		compressBufs.Put(bp)
	}
	return res
}

// maxPooledBuf is the largest buffer kept for reuse; larger ones are rare
// and would pin memory in the pools.
const maxPooledBuf = 4 << 20

var compressBufs = sync.Pool{New: func() any { return new([]byte) }}

// encoder is shared: EncodeAll is safe for concurrent use and an encoder is
// too costly to make per segment. It is made on first use so that functions
// that never compress do not pay for it.
var encoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithZeroFrames(true))
	if err != nil {
		panic(fmt.Sprintf("segment: zstd encoder: %v", err)) // constant, valid options
	}
	return e
})

// decodeZstd decodes a whole zstd payload into buf's storage (or a larger
// buffer) and returns the output. On error it returns the largest buffer it
// used, emptied, so that a caller can reuse it.
//
// The decoder is told to decode no more than the output buffer holds, and
// the buffer never holds more than limit+1 bytes, so a bomb costs at most
// that much memory. The buffer is sized from the frame header when it
// states the content size (our own Compress does) and is then exact;
// otherwise decoding starts from a guess and is redone in a buffer four
// times larger (capped at limit+1) each time the output outgrows it. The
// failed attempts cost less than 4/3 of the last buffer, so a bomb costs
// under 2.5 times limit in allocations and decoding, and never holds more
// than limit+1 bytes of output at once.
func decodeZstd(dec *zstd.Decoder, data, buf []byte, limit int64) ([]byte, error) {
	want := 8 * int64(len(data)) // JSON compresses about 8:1
	var h zstd.Header
	header := h.Decode(data) == nil
	if header && h.HasFCS {
		if h.FrameContentSize > uint64(limit) {
			return buf[:0], tooLarge(limit)
		}
		want = int64(h.FrameContentSize) + zstdSlack
	}
	if !header || !h.HasFCS {
		want = max(want, 4<<10) // a guess: start with some room
	}
	want = min(want, limit+1)
	if int64(cap(buf)) > limit+1 {
		buf = buf[: 0 : limit+1] // a reused buffer must not raise the bound
	}
	for {
		if int64(cap(buf)) < want {
			buf = make([]byte, 0, want)
		}
		out, err := dec.DecodeAll(data, buf[:0])
		if err == nil {
			if int64(len(out)) > limit {
				return buf[:0], tooLarge(limit)
			}
			return out, nil
		}
		if header && outgrew(err, out, buf) {
			if int64(cap(buf)) <= limit {
				want = min(4*int64(cap(buf)), limit+1)
				continue
			}
			return buf[:0], tooLarge(limit)
		}
		if errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return buf[:0], tooLarge(limit)
		}
		return buf[:0], invalid(ReasonBadCompression, fmt.Errorf("zstd: %w", err))
	}
}

// zstdSlack is room past the stated content size; it lets the decoder use
// its fast, overlong copies up to the last byte.
const zstdSlack = 64

// outgrew tells whether DecodeAll may have failed for want of room in buf.
// The decoder reports that with ErrDecoderSizeExceeded, except when a
// compressed block does not fit, which gives a generic error; DecodeAll's
// output then stops within a block's size of the buffer's end. Corrupt
// input that fails there is retried in a larger buffer, where it fails
// again away from the end: so a broken payload costs at most a few
// attempts and buffers up to a few hundred KiB.
func outgrew(err error, out, buf []byte) bool {
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return true
	}
	const maxBlock = 128 << 10 // zstd's largest block
	return cap(buf)-len(out) < maxBlock+zstdSlack
}

// zstdDecoders holds one shared DecodeAll decoder per decoded-size cap and
// checksum choice (*zstd.Decoder by decoderKey). DecodeAll is safe for
// concurrent use, and a decoder is costly to make, so there is one per key
// and not one per call.
var zstdDecoders sync.Map

type decoderKey struct {
	cap    uint64
	verify bool
}

// zstdDecoder returns the shared decoder for limit (see decoderCap) that
// verifies frame checksums or not.
func zstdDecoder(limit int64, verify bool) *zstd.Decoder {
	c := decoderCap(limit)
	key := decoderKey{c, verify}
	if d, ok := zstdDecoders.Load(key); ok {
		return d.(*zstd.Decoder)
	}
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0), // GOMAXPROCS concurrent DecodeAlls
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(c),
		zstd.WithDecoderMaxWindow(c),
		zstd.IgnoreChecksum(!verify))
	if err != nil {
		panic(fmt.Sprintf("segment: zstd decoder: %v", err)) // decoderCap keeps the options valid
	}
	if prev, loaded := zstdDecoders.LoadOrStore(key, d); loaded {
		d.Close()
		return prev.(*zstd.Decoder)
	}
	return d
}

// decoderCap returns the caps on decoded size and window of the decoder
// used for limit: limit rounded up to a power of two, so that arbitrary
// limits cannot make unboundedly many decoders, and at least 8 MiB, at most
// 1 TiB. The output buffer, not this cap, enforces the exact limit.
//
// The decoder refuses any window larger than its decoded-size cap, and
// encoders pick windows by level, not content: zstd -19 streams use 8 MiB
// windows (the spec's recommended minimum for decoders to support) however
// little they hold. So the cap stays at 8 MiB or more, or small limits would
// refuse ordinary payloads.
func decoderCap(limit int64) uint64 {
	const lo, hi = 8 << 20, 1 << 40
	if limit <= lo {
		return lo
	}
	if limit >= hi {
		return hi
	}
	return 1 << bits.Len64(uint64(limit-1))
}

// inflater holds the reusable state for gzip and zlib streams. Making a
// flate reader allocates its 32 KiB window and tables, too much to do for
// each of thousands of segments a second.
type inflater struct {
	src bytes.Reader
	gz  gzip.Reader   // the zero value is ready for Reset
	zl  io.ReadCloser // made on first zlib use; implements zlib.Resetter
}

var inflaters = sync.Pool{New: func() any { return new(inflater) }}

// open returns a reader of data's decompressed bytes. Errors are
// *InvalidError.
func (f *inflater) open(enc Encoding, data []byte) (io.Reader, error) {
	f.src.Reset(data)
	var err error
	switch enc {
	case Gzip:
		if err = f.gz.Reset(&f.src); err == nil {
			return &f.gz, nil
		}
	case Zlib:
		if f.zl == nil {
			var zl io.ReadCloser
			if zl, err = zlib.NewReader(&f.src); err == nil {
				f.zl = zl
				return zl, nil
			}
		} else if err = f.zl.(zlib.Resetter).Reset(&f.src, nil); err == nil {
			return f.zl, nil
		}
	default:
		panic("segment: inflater for " + string(enc))
	}
	return nil, invalid(ReasonBadCompression, fmt.Errorf("%s header: %w", enc, err))
}

// trailing reports data after the end of a stream read to its end. A gzip
// reader sees it itself (as the start of a malformed next member); a zlib
// reader stops at its checksum, and since bytes.Reader is an
// io.ByteReader the inflater has read nothing past it.
func (f *inflater) trailing(enc Encoding) error {
	if enc == Zlib && f.src.Len() > 0 {
		return invalid(ReasonBadCompression, fmt.Errorf("zlib: %d bytes after the end of the stream", f.src.Len()))
	}
	return nil
}

// release returns f to the pool without keeping the payload reachable.
func (f *inflater) release() {
	f.src.Reset(nil)
	inflaters.Put(f)
}

// readAll reads r to the end, failing once it yields more than limit bytes.
func readAll(enc Encoding, r io.Reader, limit int64, hint int64) ([]byte, error) {
	br := boundedReader{r: r, limit: limit}
	buf := make([]byte, 0, hint)
	for {
		if len(buf) == cap(buf) {
			buf = grow(buf, limit)
		}
		n, err := br.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, br.failure(enc)
		}
	}
}

// grow returns a full buf with more room: double, rather than append's
// 1.25 for large slices, so that a bomb costs a small multiple of limit in
// allocations, and never room past limit+1.
func grow(buf []byte, limit int64) []byte {
	grown := make([]byte, len(buf), min(2*int64(cap(buf))+512, limit+1))
	copy(grown, buf)
	return grown
}

// sizeHint guesses the decompressed size of data, so that readAll can
// allocate once. A gzip trailer states the size (mod 2^32) of its last
// member; deflate cannot expand more than 1032:1, so a larger claim is a
// lie and is not believed. zlib states nothing; JSON compresses about 8:1.
func sizeHint(enc Encoding, data []byte, limit int64) int64 {
	var n int64
	if enc == Gzip && len(data) >= 18 {
		n = min(int64(binary.LittleEndian.Uint32(data[len(data)-4:])), 1032*int64(len(data)))
	} else {
		n = 8 * int64(len(data))
	}
	// One byte more than the content lets the read that sees EOF fit
	// without growing the buffer.
	return min(n, limit) + 1
}

// errTooLarge marks a stream that yielded more than its limit.
var errTooLarge = errors.New("decompressed size over the limit")

// boundedReader reads at most limit+1 bytes from r: reading the extra byte
// proves the stream is too large without decompressing any further. It
// counts what it read and remembers the first error other than io.EOF.
type boundedReader struct {
	r     io.Reader
	limit int64
	n     int64
	err   error
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if room := b.limit - b.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.limit {
		b.err = errTooLarge
		return n, b.err
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// failure turns the reader's error into an *InvalidError, or returns nil
// if it had none.
func (b *boundedReader) failure(enc Encoding) error {
	switch {
	case b.err == nil:
		return nil
	case b.err == errTooLarge:
		return tooLarge(b.limit)
	}
	return invalid(ReasonBadCompression, fmt.Errorf("%s: %w", enc, b.err))
}

func tooLarge(limit int64) *InvalidError {
	return invalid(ReasonDecompressedTooLarge, fmt.Errorf("decompressed size exceeds %d bytes", limit))
}
