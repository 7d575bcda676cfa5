package segment

import (
	"errors"
	"fmt"
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
	EventTypeFullSnapshot = 2
	EventTypeMeta         = 4
	EventTypeCustom       = 5
	EventTypePlugin       = 6
)

// ErrStop, returned by an Events callback, ends the walk early without an
// error.
var ErrStop = errors.New("stop")

// Events calls fn with each event of doc, a JSON array of event objects
// such as a stored segment, in order. It runs the validator's scanner with
// an EventHook (ValidateEvents), so the type and timestamp are exactly
// Validate's and doc is checked as Validate checks it; a document Validate
// refuses fails with its error. Raw is doc[Start:End], the stored bytes.
//
// fn may modify doc before the start of the event it is given (Serve
// compacts the events it keeps towards the front as it goes): the scanner
// reads doc once, front to back, and has read the whole event when fn is
// called. Returning ErrStop skips the remaining events.
func Events(doc []byte, fn func(Event) error) error {
	var ferr error
	hook := &EventHook{OnEvent: func(m EventMeta) {
		if ferr != nil {
			return
		}
		ferr = fn(Event{Type: m.Type, HasType: m.HasType, TS: m.Timestamp, Raw: doc[m.Start:m.End:m.End]})
	}}
	size := max(int64(len(doc)), 1)
	_, err := ValidateEvents(doc, Limits{MaxPayload: size, MaxDecompressed: size}, hook)
	switch {
	case err != nil:
		return fmt.Errorf("events: %w", err)
	case ferr == ErrStop:
		return nil
	}
	return ferr
}
