package packer

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/direct"
	"github.com/replayvault/replayvault/shared/segment"
)

// Pack takes a segment in two forms, told apart by Content-Type:
//
//   - a Pub/Sub push (any type but the direct one; Pub/Sub sends
//     application/json): the JSON envelope with the payload in base64,
//     also as a binary-mode CloudEvent. This is how what Ingest spills to
//     the segments topic arrives.
//   - the direct form (direct.ContentType), which Ingest sends for each
//     segment first: the payload as the body after a small block with the
//     message id and attributes (package direct). No base64 and no JSON to
//     decode, and a body 3/4 the size; the payload is the body's buffer.
//     Ingest sends it with PUT (Pack takes it with POST too): a Pack from
//     before this form takes POST only, so it answers Ingest 405 and
//     Ingest publishes the segment, where a POST would have been read as
//     a push that is no envelope and acked into the reject topic. Ingest
//     can so be deployed before Pack, or rolled back after it, safely.
//
// Both are authenticated alike (Cloud Run IAM: roles/run.invoker, held by
// Pub/Sub's push identity and Ingest's service account), and the message
// they carry goes through the same validation (segment.ParseAttributes and
// the rest of ingest), so a segment is stored, rejected or found a
// duplicate the same way whichever form brought it.
//
// A malformed direct request is answered 400 and not published to the
// reject topic as a bad push envelope is: it comes from Ingest, which on
// any non-2xx publishes the same message to the segments topic, so it
// reaches Pack again as a push and is stored (or rejected for what it
// holds). Taking it to the reject topic and answering 200 would settle it
// there, and a fault in the form would lose the segment from the main
// path.

// form is how a request carries its message.
type form int

const (
	formPush form = iota
	formDirect
)

// requestForm returns the form a Content-Type selects; false for a type of
// ours Pack does not know (a later direct form): refused with 415, so the
// sender publishes the message instead of Pack misreading it.
func requestForm(contentType string) (form, bool) {
	if contentType == direct.ContentType {
		return formDirect, true
	}
	if len(contentType) >= len(vendorPrefix) && strings.EqualFold(contentType[:len(vendorPrefix)], vendorPrefix) {
		return 0, false
	}
	return formPush, true
}

// vendorPrefix starts every media type of ours.
const vendorPrefix = "application/vnd.replayvault."

// maxDirect is the largest direct body Pack reads: the largest payload
// after the largest block.
func maxDirect(lim segment.Limits) int64 {
	maxPayload := lim.MaxPayload
	if maxPayload <= 0 {
		maxPayload = segment.DefaultMaxPayload
	}
	return maxPayload + direct.MaxBlockBytes
}

// ErrDirectTooLarge refuses a direct body larger than the payload limit
// plus the largest block.
var ErrDirectTooLarge = fmt.Errorf("direct body too large: %w", derrors.TooLarge)

// directHold is the buffer space a direct request of contentLength bytes
// (-1: unknown) will hold: only its body's buffer, which the payload is a
// part of. Unknown lengths reserve the largest direct body.
func directHold(contentLength int64, lim segment.Limits) int64 {
	n := contentLength
	if n < 0 || n > maxDirect(lim) {
		n = maxDirect(lim)
	}
	return bufferSize(n)
}

// ReadDirect reads the body of a direct request, refusing one larger than a
// payload within lim could make (ErrDirectTooLarge), into one buffer of the
// announced size.
func ReadDirect(r *http.Request, lim segment.Limits) ([]byte, error) {
	return readBody(r, maxDirect(lim), ErrDirectTooLarge, func(n int64) []byte { return make([]byte, n) })
}

// DecodeDirect returns the message of a direct request body; an error
// (wrapping derrors.InvalidArgument, with no byte of the body in it) means
// the body is not in the direct form. The payload is not copied: m.Data is
// the tail of body, so body must not be reused while m.Data is in use.
// m.EnvelopeBytes is body's buffer (its capacity), which the request holds
// until its answer. The benchmark's naive baseline decodes with it too.
func DecodeDirect(body []byte) (Message, error) {
	id, attrs, payload, err := direct.Decode(body)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %w", derrors.InvalidArgument, err)
	}
	return Message{ID: id, Data: payload, Attributes: attrs, EnvelopeBytes: cap(body)}, nil
}
