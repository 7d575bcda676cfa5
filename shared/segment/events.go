package segment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// Event is one event of a segment as Events hands it out: its rrweb type
// and timestamp read the way Validate reads them, and its bytes exactly as
// stored.
type Event struct {
	// Type is the rrweb event type; HasType is false when the event has
	// none (absent or null).
	Type    int64
	HasType bool
	// TS is the timestamp in milliseconds since the epoch, normalised as
	// Validate does (seconds are scaled); 0 when the event has none.
	TS int64
	// Raw is the event's JSON object, a sub-slice of the document: valid
	// only during the callback, and the callee must not modify it.
	Raw []byte
}

// rrweb event types that readers of recordings care about.
const (
	EventFullSnapshot = 2
	EventMeta         = 4
	EventCustom       = 5
	EventPlugin       = 6
)

// ErrStop, returned by an Events callback, ends the walk early without an
// error.
var ErrStop = errors.New("stop")

// Events calls fn with each event of doc, a JSON array of event objects
// such as a stored segment, in order. It is meant for documents that
// Validate has accepted; anything else fails with an error (never a
// panic). Each element is split off by a byte scanner, so Raw is the
// stored bytes, and only the element's own fields are parsed.
//
// The hook has the shape of a streaming validator's per-event callback
// (type, timestamp, raw bytes), so consumers written against it can later
// run inside the validation pass itself.
func Events(doc []byte, fn func(Event) error) error {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '[' {
		return errors.New("events: not a JSON array")
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == ']' {
		return nil
	}
	p := parsers.Get()
	var scratch [2][]byte
	largest := 0
	defer func() {
		if largest <= maxPooledBuf {
			parsers.Put(p) // a parser keeps its largest tree; don't pool huge ones
		}
	}()
	for n := 0; ; n++ {
		end, err := elementEnd(doc, i)
		if err != nil {
			return fmt.Errorf("events: event %d: %w", n, err)
		}
		largest = max(largest, end-i)
		ev, err := eventMeta(p, doc[i:end], &scratch)
		if err != nil {
			return fmt.Errorf("events: event %d: %w", n, err)
		}
		if err := fn(ev); err != nil {
			if err == ErrStop {
				return nil
			}
			return err
		}
		i = skipSpace(doc, end)
		if i >= len(doc) {
			return errors.New("events: unterminated array")
		}
		switch doc[i] {
		case ',':
			i = skipSpace(doc, i+1)
		case ']':
			if skipSpace(doc, i+1) != len(doc) {
				return errors.New("events: data after the array")
			}
			return nil
		default:
			return fmt.Errorf("events: unexpected %q after event %d", doc[i], n)
		}
	}
}

// eventMeta reads an element's type and timestamp. It allocates nothing
// per event in the usual case: the number literals go through scratch.
func eventMeta(p *fastjson.Parser, raw []byte, scratch *[2][]byte) (Event, error) {
	ev := Event{Raw: raw}
	var typ, ts []byte
	v, err := p.ParseBytes(raw)
	switch {
	case err != nil && strings.Contains(err.Error(), "too big depth"):
		// Deeper than fastjson goes (a deep DOM snapshot): decode just the
		// two fields with encoding/json, as the streaming validator does.
		var e event
		if err := json.Unmarshal(raw, &e); err != nil {
			return ev, err
		}
		typ, ts = []byte(e.Type), []byte(e.Timestamp)
	case err != nil:
		return ev, err
	case v.Type() != fastjson.TypeObject:
		return ev, fmt.Errorf("a JSON %s, not an object", v.Type())
	default:
		if typ, err = numberText(v, "type", &scratch[0]); err != nil {
			return ev, err
		}
		if ts, err = numberText(v, "timestamp", &scratch[1]); err != nil {
			return ev, err
		}
	}
	if len(typ) > 0 {
		n, err := strconv.ParseInt(string(typ), 10, 64)
		if err != nil {
			return ev, fmt.Errorf("type %s is not an integer", quote(string(typ)))
		}
		ev.Type, ev.HasType = n, true
	}
	if len(ts) > 0 {
		ms, ok := millis(string(ts))
		if !ok {
			return ev, fmt.Errorf("timestamp %s is not a positive time", quote(string(ts)))
		}
		ev.TS = ms
	}
	return ev, nil
}

// numberText is numberField without the allocation: the literal of o's
// numeric field key (nil when absent or null), in *buf for a number or
// pointing into the value for a string holding one.
func numberText(o *fastjson.Value, key string, buf *[]byte) ([]byte, error) {
	f := o.Get(key)
	if f == nil {
		return nil, nil
	}
	switch f.Type() {
	case fastjson.TypeNull:
		return nil, nil
	case fastjson.TypeNumber:
		*buf = f.MarshalTo((*buf)[:0])
		return *buf, nil
	case fastjson.TypeString:
		b, _ := f.StringBytes()
		if !json.Valid(b) || len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
			return nil, fmt.Errorf("%s %q is not a number", key, b)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s is a JSON %s, not a number", key, f.Type())
}

// elementEnd returns the index just past the JSON value that starts at
// doc[i]: it tracks strings (with escapes) and bracket depth, nothing more,
// which is enough to split a document that is known to be valid.
func elementEnd(doc []byte, i int) (int, error) {
	if i >= len(doc) {
		return 0, errors.New("unexpected end")
	}
	depth := 0
	for j := i; j < len(doc); j++ {
		switch c := doc[j]; c {
		case '"':
			k := j + 1
			for {
				q := bytes.IndexByte(doc[k:], '"')
				if q < 0 {
					return 0, errors.New("unterminated string")
				}
				k += q
				// The quote is escaped when an odd number of backslashes
				// precede it.
				bs := 0
				for b := k - 1; b > j && doc[b] == '\\'; b-- {
					bs++
				}
				if bs%2 == 0 {
					break
				}
				k++
			}
			j = k
			if depth == 0 {
				return j + 1, nil
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j, nil // a scalar ended
			}
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		case ',', ' ', '\t', '\r', '\n':
			if depth == 0 {
				return j, nil // a scalar ended
			}
		}
	}
	if depth == 0 {
		return len(doc), nil
	}
	return 0, errors.New("unexpected end")
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}
