package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Default limits. Pub/Sub caps a message at 10 MB; the decompressed cap
// guards against compression bombs.
const (
	DefaultMaxPayload      = 10 << 20
	DefaultMaxDecompressed = 64 << 20
)

// Limits bound the work and memory one payload may cost. A zero field
// takes its default.
type Limits struct {
	// MaxPayload caps the payload as received, compressed or not.
	MaxPayload int64
	// MaxDecompressed caps the raw JSON, whatever the encoding. It bounds
	// the CPU time of a payload; memory does not depend on it (see
	// Validate).
	MaxDecompressed int64
	// MaxDepth caps the nesting of the JSON (DefaultMaxDepth when zero).
	MaxDepth int
}

func (l Limits) withDefaults() Limits {
	if l.MaxPayload <= 0 {
		l.MaxPayload = DefaultMaxPayload
	}
	l.MaxDecompressed = decompressedLimit(l.MaxDecompressed)
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// decompressedLimit applies the default to a decompressed-size limit, and
// clamps it so that limit+1 cannot overflow.
func decompressedLimit(limit int64) int64 {
	if limit <= 0 {
		return DefaultMaxDecompressed
	}
	return min(limit, 1<<62)
}

// Info is what validation learns about a payload. It is stored with the
// segment so that time-window reads and seeking never reopen segments.
type Info struct {
	Encoding Encoding
	// RawSize is the size of the decompressed JSON, in bytes.
	RawSize int64
	// EventCount is the number of events in the array.
	EventCount int
	// FirstTS and LastTS are the smallest and largest event timestamps, in
	// milliseconds since the epoch; events need not be in order. Both are 0
	// if no event has a timestamp.
	FirstTS, LastTS int64
	// HasFullSnapshot says whether some event has rrweb type 2
	// (FullSnapshot): a player can start playing at this segment.
	HasFullSnapshot bool
}

// Validate checks that payload is a JSON array of event objects, raw or
// compressed with gzip, zlib or zstd (told by Detect), within lim, and
// returns its metadata. Every error is an *InvalidError: the payload can
// never become valid.
//
// The JSON is checked in one streaming pass, fed straight from the
// decompressor through a fixed 64 KiB buffer: it must be exactly what
// encoding/json.Valid accepts (RFC 8259; like json.Valid, bytes of a string
// need not be valid UTF-8), nested at most lim.MaxDepth deep, and no tree
// is built. Memory is O(depth) plus fixed buffers whatever the payload
// holds; a zstd stream also needs its window (at most 8 MiB; a frame
// declaring a larger window is decoded whole, within lim.MaxDecompressed).
//
// An event is any JSON object. Its "type", if present and not null, must
// be an integer, and its "timestamp" a positive number (as for
// json.Number, a string holding one is accepted too; and as encoding/json
// does, keys match case-insensitively and the last one wins). rrweb
// timestamps are milliseconds since the epoch, but some SDKs send seconds,
// sometimes fractional, so a timestamp below 1e11 (which as milliseconds
// would be before March 1973, and as seconds is after the year 5000) is
// taken as seconds and rounded to the millisecond; any other is
// milliseconds with the fraction dropped. A type or timestamp literal
// longer than 128 bytes is refused.
//
// When a payload has several faults, the first in this order is reported:
// size, compression (a stream that fails to decompress, or decompresses
// to too much, is reported as such even when the bytes before were
// already not JSON), JSON syntax and nesting, then the top-level value
// not being an array, then the first bad event. Errors name a byte offset
// in the decompressed JSON and a path such as [17].timestamp, never
// payload bytes.
func Validate(payload []byte, lim Limits) (Info, error) {
	return ValidateEvents(payload, lim, nil)
}

// ValidateEvents is Validate that also hands each event to hook (which may
// be nil); see EventHook.
func ValidateEvents(payload []byte, lim Limits, hook *EventHook) (Info, error) {
	info, _, err := validate(payload, lim, hook, false, nil)
	return info, err
}

// ValidateDecode is ValidateEvents for a caller that also needs the
// decoded events whole (Pack's edge rules read them): it returns them too,
// payload itself when it is plain, else decompressed in the same pass
// into buf's storage, grown as needed within lim.MaxDecompressed (buf's
// contents are overwritten). The pass reads each piece of the output as
// it comes out of the decompressor, while it is in cache, and the payload
// is decompressed once. On error the events are nil.
func ValidateDecode(payload []byte, lim Limits, hook *EventHook, buf []byte) (Info, []byte, error) {
	return validate(payload, lim, hook, true, buf)
}

// validate is ValidateEvents, and with keep ValidateDecode.
func validate(payload []byte, lim Limits, hook *EventHook, keep bool, buf []byte) (Info, []byte, error) {
	lim = lim.withDefaults()
	if len(payload) == 0 {
		return Info{}, nil, invalid(ReasonEmptyPayload, errors.New("payload is empty"))
	}
	if int64(len(payload)) > lim.MaxPayload {
		return Info{}, nil, invalid(ReasonPayloadTooLarge, fmt.Errorf("payload of %d bytes exceeds %d", len(payload), lim.MaxPayload))
	}
	w := works.Get().(*work)
	defer w.release()
	info := &w.info // in w, so that it does not escape per call
	*info = Info{Encoding: Detect(payload)}
	w.sc.reset(lim.MaxDepth, hook, info)
	var (
		err    error
		events []byte
	)
	switch info.Encoding {
	case Plain:
		if int64(len(payload)) > lim.MaxDecompressed {
			return Info{}, nil, tooLarge(lim.MaxDecompressed)
		}
		w.sc.feed(payload)
		info.RawSize = int64(len(payload))
		events = payload
	case Gzip, Zlib:
		f := inflaters.Get().(*inflater)
		defer f.release()
		var r io.Reader
		if r, err = f.open(info.Encoding, payload); err != nil {
			return Info{}, nil, err
		}
		if keep {
			events, err = w.pumpKeep(info.Encoding, r, lim.MaxDecompressed, buf[:0], sizeHint(info.Encoding, payload, lim.MaxDecompressed))
			info.RawSize = int64(len(events))
		} else {
			info.RawSize, err = w.pump(info.Encoding, r, lim.MaxDecompressed)
		}
		if err == nil {
			err = f.trailing(info.Encoding)
		}
	case Zstd:
		if keep {
			// Decoded whole: the caller keeps all of it anyway.
			if events, err = decodeZstd(zstdDecoder(lim.MaxDecompressed, true), payload, buf[:0], lim.MaxDecompressed); err == nil {
				w.sc.feed(events)
				info.RawSize = int64(len(events))
			}
		} else {
			info.RawSize, err = w.zstd(payload, lim.MaxDecompressed)
		}
	}
	if err == nil {
		err = w.sc.finish()
	}
	if err != nil {
		return Info{}, nil, err
	}
	return *info, events, nil
}

// chunkSize is the decompressed bytes scanned at a time: large enough that
// per-chunk costs vanish, small enough to stay in L2 cache.
const chunkSize = 64 << 10

// work is the reusable state of one validation.
type work struct {
	sc   scanner
	info Info
	buf  [chunkSize]byte
	src  bytes.Reader
}

var works = sync.Pool{New: func() any { return new(work) }}

func (w *work) release() {
	w.sc.release()
	w.src.Reset(nil)
	works.Put(w)
}

// pump scans r's output, at most limit bytes, and returns its size. After
// a JSON error the stream is still read to its end (or the limit), so that
// a broken or oversized stream is reported as such.
func (w *work) pump(enc Encoding, r io.Reader, limit int64) (int64, error) {
	br := boundedReader{r: r, limit: limit}
	for {
		n, err := br.Read(w.buf[:])
		if n > 0 {
			w.sc.feed(w.buf[:n])
		}
		if err == io.EOF {
			return br.n, nil
		}
		if err != nil {
			return 0, br.failure(enc)
		}
	}
}

// pumpKeep is pump that keeps r's output: it decompresses into buf (grown
// as readAll grows it, first to hint) and scans each piece of at least
// chunkSize as it arrives, and returns the output.
func (w *work) pumpKeep(enc Encoding, r io.Reader, limit int64, buf []byte, hint int64) ([]byte, error) {
	br := boundedReader{r: r, limit: limit}
	if int64(cap(buf)) < hint {
		buf = make([]byte, 0, hint)
	}
	fed := 0
	for {
		if len(buf) == cap(buf) {
			buf = grow(buf, limit)
		}
		n, err := br.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf)-fed >= chunkSize || err != nil && len(buf) > fed {
			w.sc.feed(buf[fed:])
			fed = len(buf)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, br.failure(enc)
		}
	}
}

// maxStreamWindow is the largest zstd window decoded streaming: the
// format's recommended minimum for decoders, and what zstd uses up to
// level 19. A larger window is decoded whole instead, which costs the
// output (bounded by the limit) rather than the window.
const maxStreamWindow = 8 << 20

// zstd scans a zstd payload; see Validate.
func (w *work) zstd(payload []byte, limit int64) (int64, error) {
	var h zstd.Header
	if h.Decode(payload) == nil {
		if h.HasFCS && h.FrameContentSize > uint64(limit) {
			return 0, tooLarge(limit)
		}
		window := h.WindowSize
		if h.SingleSegment {
			window = h.FrameContentSize
		}
		if window > maxStreamWindow {
			return w.zstdWhole(payload, limit)
		}
	}
	d := zstdStreams.Get().(*zstd.Decoder)
	defer func() {
		_ = d.Reset(nil)
		zstdStreams.Put(d)
	}()
	w.src.Reset(payload)
	if err := d.Reset(&w.src); err != nil {
		return 0, invalid(ReasonBadCompression, fmt.Errorf("zstd: %w", err))
	}
	n, err := w.pump(Zstd, d, limit)
	if err == nil {
		return n, nil
	}
	var ie *InvalidError // escapes: allocated only on this error path
	if errors.As(err, &ie) && ie.Reason == ReasonBadCompression && errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return 0, tooLarge(limit) // a later frame's window is over maxStreamWindow
	}
	return n, err
}

// zstdWhole decodes a zstd payload with a large window in one go, bounded
// by limit, and scans the output.
func (w *work) zstdWhole(payload []byte, limit int64) (int64, error) {
	bp := rawBufs.Get().(*[]byte)
	out, err := decodeZstd(zstdDecoder(limit, true), payload, *bp, limit)
	if cap(out) <= maxPooledBuf {
		*bp = out[:0]
		defer rawBufs.Put(bp)
	}
	if err != nil {
		return 0, err
	}
	w.sc.feed(out)
	return int64(len(out)), nil
}

// zstdStreams recycles streaming zstd decoders. Each keeps a window's worth
// of history (at most maxStreamWindow) between uses.
var zstdStreams = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1), // decode in the caller's goroutine
		zstd.WithDecoderMaxWindow(maxStreamWindow),
		zstd.WithDecoderMaxMemory(1<<40)) // the boundedReader enforces the limit
	if err != nil {
		panic(fmt.Sprintf("segment: zstd stream decoder: %v", err)) // constant, valid options
	}
	return d
}}

// rawBufs recycles the output buffers of zstd payloads decoded whole.
var rawBufs = sync.Pool{New: func() any { return new([]byte) }}

// secondsBelow is where timestamps stop being read as seconds: 1e11 s is
// in the year 5138, while 1e11 ms is in March 1973, before any recording.
const secondsBelow = 1e11

// millis normalises a JSON number timestamp to whole milliseconds since the
// epoch; see Validate. It fails for values that are not positive or do not
// fit in an int64.
func millis(s string) (int64, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil { // the usual case
		switch {
		case n <= 0:
			return 0, false
		case n < secondsBelow:
			return n * 1000, true
		}
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f >= math.MaxInt64 {
		return 0, false
	}
	var ms int64
	if f < secondsBelow {
		ms = int64(math.Round(f * 1000))
	} else {
		ms = int64(f)
	}
	return ms, ms > 0
}
