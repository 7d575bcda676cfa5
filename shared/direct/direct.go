// Package direct is the form of the request Ingest posts to Pack when it
// delivers a segment directly (not through Pub/Sub): the payload as it is,
// after a short binary block that carries the message's id and attributes.
// Pub/Sub's push envelope wraps the payload in base64 inside JSON, which
// costs Pack a decoding pass over every payload and a body a third larger;
// this form costs a read of the block, and the payload is the request
// body's own bytes.
//
// The body is
//
//	"RVD1"                             magic
//	uint32 n                           length of the block that follows, up to the payload
//	uint16 len, message id             1..MaxIDBytes printable ASCII
//	uint16 count                       0..MaxAttributes
//	count × (uint16 len, key,          1..MaxKeyBytes of UTF-8
//	         uint16 len, value)        0..MaxValueBytes of UTF-8
//	payload                            the rest of the body
//
// integers big-endian. The attributes travel in the body rather than as
// request headers: header names are case-insensitive and canonicalized,
// proxies may drop names with underscores (every segment attribute has
// one) or cap the headers' total size, and values would need an escaping of
// their own for anything outside visible ASCII. In a length-prefixed block
// keys stay exact, values are any UTF-8, duplicates are detected, and the
// block's size is known before it is read.
//
// The limits are Pub/Sub's own (100 attributes, keys of 256 bytes, values
// of 1,024), so every message that travels in this form can also be
// published, which is where Ingest sends it when Pack does not take it.
// Decode is strict: any deviation from the layout above is an error, and
// its text holds lengths and positions only, never the bytes of a key,
// value or payload.
package direct

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// ContentType selects the form: Pack decodes a request of this type with
// Decode, and any other as a Pub/Sub push. The version is in the name, so a
// later form is a different type that an older Pack refuses (415) rather
// than misreads.
const ContentType = "application/vnd.replayvault.segment-v1"

// Limits of the block (Pub/Sub's for attributes).
const (
	MaxIDBytes    = 128
	MaxAttributes = 100
	MaxKeyBytes   = 256
	MaxValueBytes = 1024
	// MaxBlockBytes is the largest block (magic and length included) a
	// body can start with.
	MaxBlockBytes = 8 + 2 + MaxIDBytes + 2 + MaxAttributes*(2+MaxKeyBytes+2+MaxValueBytes)
)

const magic = "RVD1"

// ErrMalformed is the class of every Decode error: the body is not in this
// form.
var ErrMalformed = errors.New("malformed direct request")

// AppendBlock appends the block for a message with the given id and
// attributes to dst; the payload goes after it. Attributes are written in
// key order, so the same message always has the same block. It fails on
// what Decode would refuse.
func AppendBlock(dst []byte, id string, attrs map[string]string) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if len(attrs) > MaxAttributes {
		return nil, fmt.Errorf("%w: %d attributes (at most %d)", ErrMalformed, len(attrs), MaxAttributes)
	}
	n := 2 + len(id) + 2
	for k, v := range attrs {
		if err := checkAttribute(k, v); err != nil {
			return nil, err
		}
		n += 2 + len(k) + 2 + len(v)
	}
	dst = append(dst, magic...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(id)))
	dst = append(dst, id...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(attrs)))
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(attrs[k])))
		dst = append(dst, attrs[k]...)
	}
	return dst, nil
}

// Decode splits a body into the message's id, attributes and payload.
// The id and attributes are copies; payload is the rest of body itself
// (not copied), so the caller keeps body's storage for as long as it uses
// the payload.
func Decode(body []byte) (id string, attrs map[string]string, payload []byte, err error) {
	if len(body) < 8 || string(body[:4]) != magic {
		return "", nil, nil, fmt.Errorf("%w: no %s block", ErrMalformed, magic)
	}
	n := binary.BigEndian.Uint32(body[4:8])
	if n > MaxBlockBytes-8 {
		return "", nil, nil, fmt.Errorf("%w: block of %d bytes (at most %d)", ErrMalformed, n, MaxBlockBytes-8)
	}
	if uint64(n) > uint64(len(body)-8) {
		return "", nil, nil, fmt.Errorf("%w: block of %d bytes in a body of %d", ErrMalformed, n, len(body))
	}
	r := reader{b: body[8 : 8+n], off: 8}
	rawID, ok := r.field(MaxIDBytes)
	if !ok {
		return "", nil, nil, r.err("message id")
	}
	id = string(rawID)
	if err := checkID(id); err != nil {
		return "", nil, nil, err
	}
	count, ok := r.uint16()
	if !ok || count > MaxAttributes {
		return "", nil, nil, r.err("attribute count")
	}
	attrs = make(map[string]string, count)
	for i := range int(count) {
		k, ok := r.field(MaxKeyBytes)
		if !ok {
			return "", nil, nil, r.err(fmt.Sprintf("attribute %d's key", i))
		}
		v, ok := r.field(MaxValueBytes)
		if !ok {
			return "", nil, nil, r.err(fmt.Sprintf("attribute %d's value", i))
		}
		if len(k) == 0 || !utf8.Valid(k) || !utf8.Valid(v) {
			return "", nil, nil, fmt.Errorf("%w: attribute %d is empty or not UTF-8", ErrMalformed, i)
		}
		if _, dup := attrs[string(k)]; dup {
			return "", nil, nil, fmt.Errorf("%w: attribute %d repeats a key", ErrMalformed, i)
		}
		attrs[string(k)] = string(v)
	}
	if len(r.b) != 0 {
		return "", nil, nil, fmt.Errorf("%w: %d bytes left in the block after the attributes", ErrMalformed, len(r.b))
	}
	return id, attrs, body[8+n:], nil
}

func checkID(id string) error {
	if len(id) == 0 || len(id) > MaxIDBytes {
		return fmt.Errorf("%w: message id of %d bytes (1 to %d)", ErrMalformed, len(id), MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		// Printable ASCII: the id is logged.
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("%w: message id has byte %d outside printable ASCII", ErrMalformed, i)
		}
	}
	return nil
}

func checkAttribute(k, v string) error {
	if len(k) == 0 || len(k) > MaxKeyBytes || len(v) > MaxValueBytes || !utf8.ValidString(k) || !utf8.ValidString(v) {
		return fmt.Errorf("%w: an attribute of %d+%d bytes (keys 1 to %d, values up to %d, UTF-8)",
			ErrMalformed, len(k), len(v), MaxKeyBytes, MaxValueBytes)
	}
	return nil
}

// reader reads the block's fields; off is the body offset of b[0], for
// errors.
type reader struct {
	b   []byte
	off int
}

func (r *reader) uint16() (uint16, bool) {
	if len(r.b) < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b, r.off = r.b[2:], r.off+2
	return v, true
}

// field reads a uint16 length and that many bytes, at most limit.
func (r *reader) field(limit int) ([]byte, bool) {
	n, ok := r.uint16()
	if !ok || int(n) > limit || int(n) > len(r.b) {
		return nil, false
	}
	f := r.b[:n]
	r.b, r.off = r.b[n:], r.off+int(n)
	return f, true
}

func (r *reader) err(what string) error {
	return fmt.Errorf("%w: %s at byte %d: cut short or over its limit", ErrMalformed, what, r.off)
}
