package segment

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
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
	// MaxDecompressed caps the raw JSON, whatever the encoding. It also
	// bounds memory: validating a payload may hold a small multiple of it
	// (about 3x at worst: a zstd payload's output, plus the JSON decoder's
	// buffer, which must hold a whole event, such as a full snapshot, and
	// grows by doubling).
	MaxDecompressed int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxPayload <= 0 {
		l.MaxPayload = DefaultMaxPayload
	}
	l.MaxDecompressed = decompressedLimit(l.MaxDecompressed)
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
// returns its metadata. It parses the JSON in one streaming pass and stops
// decompressing soon after lim.MaxDecompressed bytes. Every error is an
// *InvalidError: the payload can never become valid.
//
// An event is any JSON object. Its "type", if present and not null, must
// be an integer, and its "timestamp" a positive number (as for
// json.Number, a string holding one is accepted too; and as encoding/json
// does, keys match case-insensitively). rrweb timestamps
// are milliseconds since the epoch, but some SDKs send seconds, sometimes
// fractional, so a timestamp below 1e11 (which as milliseconds would be
// before March 1973, and as seconds is after the year 5000) is taken as
// seconds and rounded to the millisecond; any other is milliseconds with
// the fraction dropped.
//
// A payload that fails to decompress (or decompresses to too much) is
// reported as such even when the bytes decompressed before the failure were
// already not JSON.
func Validate(payload []byte, lim Limits) (Info, error) {
	lim = lim.withDefaults()
	if len(payload) == 0 {
		return Info{}, invalid(ReasonEmptyPayload, errors.New("payload is empty"))
	}
	if int64(len(payload)) > lim.MaxPayload {
		return Info{}, invalid(ReasonPayloadTooLarge, fmt.Errorf("payload of %d bytes exceeds %d", len(payload), lim.MaxPayload))
	}
	info := Info{Encoding: Detect(payload)}
	f := inflaters.Get().(*inflater)
	defer f.release()

	switch info.Encoding {
	case Plain:
		if int64(len(payload)) > lim.MaxDecompressed {
			return Info{}, tooLarge(lim.MaxDecompressed)
		}
		f.src.Reset(payload)
		if err := scanEvents(&f.src, &info); err != nil {
			return Info{}, err
		}
		info.RawSize = int64(len(payload))

	case Zstd:
		// Decoded whole rather than streamed: a pooled streaming decoder
		// would keep a history buffer as large as the largest window it
		// ever met. DecodeAll allocates no more than the output.
		bp := rawBufs.Get().(*[]byte)
		raw, err := decodeZstd(payload, *bp, lim.MaxDecompressed)
		if cap(raw) <= maxPooledBuf {
			*bp = raw[:0]
			defer rawBufs.Put(bp)
		}
		if err != nil {
			return Info{}, err
		}
		f.src.Reset(raw)
		if err := scanEvents(&f.src, &info); err != nil {
			return Info{}, err
		}
		info.RawSize = int64(len(raw))

	case Gzip, Zlib:
		r, err := f.open(info.Encoding, payload)
		if err != nil {
			return Info{}, err
		}
		br := boundedReader{r: r, limit: lim.MaxDecompressed}
		jerr := scanEvents(&br, &info)
		if jerr != nil && br.err == nil {
			// Finish decompressing (bounded) to see whether the stream
			// itself is broken, which is the better reason to report.
			_, _ = io.Copy(io.Discard, &br)
		}
		if err := br.failure(info.Encoding); err != nil {
			return Info{}, err
		}
		if jerr != nil {
			return Info{}, jerr
		}
		if err := f.trailing(info.Encoding); err != nil {
			return Info{}, err
		}
		info.RawSize = br.n
	}
	return info, nil
}

// rawBufs recycles the output buffers of zstd payloads.
var rawBufs = sync.Pool{New: func() any { return new([]byte) }}

// event holds the fields of an rrweb event that Validate reads; decoding
// skips everything else. json.Number keeps the literal, so that seconds
// with a fraction and large millisecond values both survive exactly.
type event struct {
	Type      json.Number `json:"type"`
	Timestamp json.Number `json:"timestamp"`
}

// fullSnapshot is rrweb's EventType.FullSnapshot.
const fullSnapshot = "2"

// scanEvents parses the JSON array from r, counting its events and
// collecting their metadata into info. Errors are *InvalidError; an error
// from r itself comes back as ReasonNotJSON or ReasonBadEvent, and the
// caller, which knows r, reports it better.
func scanEvents(r io.Reader, info *Info) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	switch {
	case err == io.EOF:
		return invalid(ReasonEmptyPayload, errors.New("payload holds only whitespace"))
	case err != nil:
		return invalid(ReasonNotJSON, err)
	case tok != json.Delim('['):
		return invalid(ReasonNotArray, fmt.Errorf("payload is a JSON %s, not an array", kind(tok)))
	}

	// Decoding into a non-nil pointer fills what it points to, and a JSON
	// null sets the pointer to nil: so null elements are caught and no
	// event is allocated per element.
	var slot event
	var p *event
	for dec.More() {
		slot, p = event{}, &slot
		if err := dec.Decode(&p); err != nil {
			return elementError(err, info.EventCount)
		}
		if p == nil {
			return invalid(ReasonBadEvent, fmt.Errorf("event %d is null", info.EventCount))
		}
		if err := info.add(&slot); err != nil {
			return invalid(ReasonBadEvent, fmt.Errorf("event %d: %w", info.EventCount, err))
		}
		info.EventCount++
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return invalid(ReasonNotJSON, unexpectedEOF(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid(ReasonNotJSON, errors.New("data after the array"))
	}
	return nil
}

// elementError classifies an error from decoding one array element:
// broken syntax makes the payload not JSON; well-formed JSON that is not
// an event object (or whose type or timestamp is not a number) is a bad
// event.
func elementError(err error, i int) error {
	var se *json.SyntaxError
	if errors.As(err, &se) || err == io.EOF || err == io.ErrUnexpectedEOF {
		return invalid(ReasonNotJSON, unexpectedEOF(err))
	}
	return invalid(ReasonBadEvent, fmt.Errorf("event %d: %w", i, err))
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// kind names the JSON type of a first token that is not '['.
func kind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim: // '{'; a closing delimiter is a syntax error
		return "object"
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case bool:
		return "boolean"
	}
	return "null"
}

// add folds one event's metadata into info.
func (info *Info) add(ev *event) error {
	if ev.Type != "" {
		if ev.Type == fullSnapshot {
			info.HasFullSnapshot = true
		} else if _, err := strconv.ParseInt(string(ev.Type), 10, 64); err != nil {
			return fmt.Errorf("type %s is not an integer", quote(string(ev.Type)))
		}
	}
	if ev.Timestamp != "" {
		ts, ok := millis(string(ev.Timestamp))
		if !ok {
			return fmt.Errorf("timestamp %s is not a positive time in seconds or milliseconds", quote(string(ev.Timestamp)))
		}
		if info.FirstTS == 0 || ts < info.FirstTS {
			info.FirstTS = ts
		}
		info.LastTS = max(info.LastTS, ts)
	}
	return nil
}

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
