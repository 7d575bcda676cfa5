// Package workload generates rrweb-like sessions for tests, the dev stack's
// publisher and benchmarks: a full snapshot, then incremental events, in
// segments of realistic size.
package workload

import (
	"bytes"
	"fmt"
	"math/rand/v2"

	"github.com/klauspost/compress/gzip"
)

// rrweb event types.
const (
	typeFullSnapshot = 2
	typeIncremental  = 3
	typeMeta         = 4
)

// Segment returns the JSON array of one segment of about approxBytes bytes.
// Segment 0 starts with a meta event and a full snapshot, as rrweb records
// them; later segments hold incremental events. Timestamps are milliseconds,
// 50 ms apart, starting at startMS.
func Segment(rng *rand.Rand, segmentID int, startMS int64, approxBytes int) []byte {
	var b bytes.Buffer
	b.Grow(approxBytes + 512)
	b.WriteByte('[')
	ts := startMS
	n := 0
	emit := func(format string, args ...any) {
		if n > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, format, args...)
		n++
		ts += 50
	}
	if segmentID == 0 {
		emit(`{"type":%d,"data":{"href":"https://example.test/checkout","width":1280,"height":800},"timestamp":%d}`, typeMeta, ts)
		emit(`{"type":%d,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[{"type":2,"tagName":"body","attributes":{"class":"page"},"childNodes":[{"type":3,"textContent":%q,"id":4}],"id":3}],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":%d}`,
			typeFullSnapshot, text(rng, 200), ts)
	}
	for b.Len() < approxBytes {
		switch rng.IntN(3) {
		case 0: // mouse move
			emit(`{"type":%d,"data":{"source":1,"positions":[{"x":%d,"y":%d,"id":%d,"timeOffset":0}]},"timestamp":%d}`,
				typeIncremental, rng.IntN(1280), rng.IntN(800), rng.IntN(500), ts)
		case 1: // input
			emit(`{"type":%d,"data":{"source":5,"text":%q,"isChecked":false,"id":%d},"timestamp":%d}`,
				typeIncremental, text(rng, 8+rng.IntN(40)), rng.IntN(500), ts)
		default: // mutation
			emit(`{"type":%d,"data":{"source":0,"texts":[{"id":%d,"value":%q}],"attributes":[],"removes":[],"adds":[]},"timestamp":%d}`,
				typeIncremental, rng.IntN(500), text(rng, 20+rng.IntN(200)), ts)
		}
	}
	b.WriteByte(']')
	return b.Bytes()
}

const letters = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func text(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}

// Gzip compresses a payload as browser SDKs do before upload.
func Gzip(raw []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write(raw)
	_ = w.Close()
	return b.Bytes()
}
