package segment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fastjson"
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
	raw := payload
	if info.Encoding == Zstd {
		// Decoded whole into a pooled buffer: a pooled streaming decoder
		// would keep a history buffer as large as the largest window it
		// ever met. DecodeAll allocates no more than the output.
		bp := rawBufs.Get().(*[]byte)
		out, err := decodeZstd(payload, *bp, lim.MaxDecompressed)
		if cap(out) <= maxPooledBuf {
			*bp = out[:0]
			defer rawBufs.Put(bp)
		}
		if err != nil {
			return Info{}, err
		}
		raw = out
	} else if info.Encoding != Plain || int64(len(payload)) > lim.MaxDecompressed {
		if info.Encoding != Plain && !startsArray(info.Encoding, payload) {
			// Not an array at all: scan it streaming, so garbage (a bomb
			// of zeros, say) is judged without holding what it expands to.
			return validateStream(payload, lim, info)
		}
		// Decompressed whole (bounded) before parsing: the parser below
		// wants the whole document.
		out, err := Decode(info.Encoding, payload, lim.MaxDecompressed)
		if err != nil {
			return Info{}, err
		}
		raw = out
	}
	if err := scanBytes(raw, &info); err != nil {
		return Info{}, err
	}
	info.RawSize = int64(len(raw))
	return info, nil
}

// startsArray reports whether the first non-blank byte of a gzip or zlib
// payload's content is '['. It decompresses at most a few KiB.
func startsArray(enc Encoding, payload []byte) bool {
	f := inflaters.Get().(*inflater)
	defer f.release()
	r, err := f.open(enc, payload)
	if err != nil {
		return false
	}
	var buf [512]byte
	for range 8 {
		n, err := r.Read(buf[:])
		if t := bytes.TrimLeft(buf[:n], " \t\r\n"); len(t) > 0 {
			return t[0] == '['
		}
		if err != nil {
			return false
		}
	}
	return false
}

// validateStream is Validate for a gzip or zlib payload that does not hold
// an array: encoding/json's streaming scanner reports what is wrong, and
// the stream is still decompressed (bounded, to nowhere) so that a broken
// or oversized stream is reported as such.
func validateStream(payload []byte, lim Limits, info Info) (Info, error) {
	f := inflaters.Get().(*inflater)
	defer f.release()
	r, err := f.open(info.Encoding, payload)
	if err != nil {
		return Info{}, err
	}
	br := boundedReader{r: r, limit: lim.MaxDecompressed}
	jerr := scanEvents(&br, &info)
	if jerr != nil && br.err == nil {
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
	return info, nil
}

// parsers recycles fastjson parsers (their value trees are reused).
var parsers fastjson.ParserPool

// scanBytes parses raw, which must be a JSON array of event objects, and
// collects the events' metadata into info. fastjson parses and checks the
// whole document in one pass at several times encoding/json's speed (this
// is the packer's hottest CPU path); a document nested deeper than it
// accepts (fastjson.MaxDepth) falls back to the streaming encoding/json
// scanner, so a deep DOM snapshot is never refused.
func scanBytes(raw []byte, info *Info) error {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '[' {
		// Not an array: the streaming scanner names what it is, the same
		// way for every encoding.
		return scanEvents(bytes.NewReader(raw), info)
	}
	p := parsers.Get()
	defer func() {
		if len(raw) <= maxPooledBuf {
			parsers.Put(p) // a parser keeps its largest tree; don't pool huge ones
		}
	}()
	v, err := p.ParseBytes(raw)
	if err != nil {
		if strings.Contains(err.Error(), "too big depth") {
			return scanEvents(bytes.NewReader(raw), info)
		}
		return invalid(ReasonNotJSON, err)
	}
	if v.Type() != fastjson.TypeArray {
		return invalid(ReasonNotArray, fmt.Errorf("payload is a JSON %s, not an array", v.Type()))
	}
	events, _ := v.Array()
	var ev event
	for i, e := range events {
		if e.Type() != fastjson.TypeObject {
			return invalid(ReasonBadEvent, fmt.Errorf("event %d is a JSON %s, not an object", i, e.Type()))
		}
		ev = event{}
		if ev.Type, err = numberField(e, "type"); err == nil {
			ev.Timestamp, err = numberField(e, "timestamp")
		}
		if err == nil {
			err = info.add(&ev)
		}
		if err != nil {
			return invalid(ReasonBadEvent, fmt.Errorf("event %d: %w", i, err))
		}
		info.EventCount++
	}
	return nil
}

// numberField returns the literal of o's numeric field key ("" when absent
// or null). As with json.Number, a string holding a number is accepted.
func numberField(o *fastjson.Value, key string) (json.Number, error) {
	f := o.Get(key)
	if f == nil {
		return "", nil
	}
	switch f.Type() {
	case fastjson.TypeNull:
		return "", nil
	case fastjson.TypeNumber:
		return json.Number(f.MarshalTo(nil)), nil
	case fastjson.TypeString:
		b, _ := f.StringBytes()
		if !json.Valid(b) || len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
			return "", fmt.Errorf("%s %q is not a number", key, b)
		}
		return json.Number(b), nil
	}
	return "", fmt.Errorf("%s is a JSON %s, not a number", key, f.Type())
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
