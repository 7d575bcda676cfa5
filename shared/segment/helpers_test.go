package segment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// encode compresses raw with enc the way a browser SDK might.
func encode(tb testing.TB, enc Encoding, raw []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	switch enc {
	case Plain:
		return raw
	case Gzip:
		w := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(w)
		w.Reset(&buf)
		write(tb, w, raw)
	case Zlib:
		write(tb, zlib.NewWriter(&buf), raw)
	case Zstd:
		return Compress(raw)
	case S2:
		out, ok := CompressS2(raw)
		if !ok {
			tb.Fatalf("encode: %d bytes too large for s2", len(raw))
		}
		return out
	default:
		tb.Fatalf("encode: unknown encoding %q", enc)
	}
	return buf.Bytes()
}

// zstdStream compresses raw as a zstd stream that, unlike Compress, does
// not state its content size in the frame header.
func zstdStream(tb testing.TB, raw []byte, opts ...zstd.EOption) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if len(opts) == 0 { // the common case, and the fuzz target's: reuse
		w := zstdWriters.Get().(*zstd.Encoder)
		defer zstdWriters.Put(w)
		w.Reset(&buf)
		write(tb, w, raw)
		return buf.Bytes()
	}
	w, err := zstd.NewWriter(&buf, append([]zstd.EOption{zstd.WithEncoderConcurrency(1)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	write(tb, w, raw)
	return buf.Bytes()
}

// Writers are costly to make; the fuzz target compresses every input.
var (
	gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	zstdWriters = sync.Pool{New: func() any {
		w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err)
		}
		return w
	}}
)

func write(tb testing.TB, w io.WriteCloser, b []byte) {
	tb.Helper()
	if _, err := w.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
}

// bomb compresses n copies of c with enc, streaming so that the n bytes
// never exist at once. prefix and suffix go around them.
func bomb(tb testing.TB, enc Encoding, prefix string, c byte, n int64, suffix string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch enc {
	case Gzip:
		w, err = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	case Zlib:
		w, err = zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	case Zstd:
		w, err = zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	default:
		tb.Fatalf("bomb: unsupported encoding %q", enc)
	}
	if err != nil {
		tb.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{c}, 1<<20)
	if _, err := io.WriteString(w, prefix); err != nil {
		tb.Fatal(err)
	}
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			tb.Fatal(err)
		}
		n -= k
	}
	if _, err := io.WriteString(w, suffix); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// recording builds a deterministic rrweb-like recording of roughly size
// bytes: a Meta event, a FullSnapshot of a nested DOM taking about 40% of
// the bytes, then incremental snapshots (mouse moves, mutations, scrolls,
// inputs) one every few dozen milliseconds. It also returns the Info that
// Validate must report for it, encoding and size aside.
func recording(size int, seed uint64) ([]byte, Info) {
	rng := rand.New(rand.NewPCG(seed, 1))
	ts := int64(1_760_000_000_000) + rng.Int64N(1_000_000)
	first := ts
	var events []any

	events = append(events, map[string]any{
		"type": 4, "timestamp": ts,
		"data": map[string]any{"href": "https://shop.example.com/cart?ref=mail", "width": 1440, "height": 900},
	})
	id := 1
	var node func(depth int, budget *int) map[string]any
	node = func(depth int, budget *int) map[string]any {
		id++
		n := map[string]any{"type": 2, "id": id, "tagName": []string{"div", "span", "a", "li", "p", "button"}[rng.IntN(6)],
			"attributes": map[string]any{"class": fmt.Sprintf("c-%x c-%x", rng.Uint32(), rng.Uint32()), "data-testid": fmt.Sprintf("t%d", id)}}
		*budget -= 90
		var kids []any
		for *budget > 0 && depth < 12 && rng.IntN(4) != 0 {
			if rng.IntN(3) == 0 {
				id++
				text := fmt.Sprintf("Item %d – only %d left in stock, order within %dh", id, rng.IntN(50), rng.IntN(24))
				kids = append(kids, map[string]any{"type": 3, "id": id, "textContent": text})
				*budget -= 40 + len(text)
			} else {
				kids = append(kids, node(depth+1, budget))
			}
		}
		n["childNodes"] = kids
		return n
	}
	budget := size * 2 / 5
	var body []any
	for budget > 0 {
		body = append(body, node(1, &budget))
	}
	ts += int64(rng.IntN(20))
	events = append(events, map[string]any{
		"type": 2, "timestamp": ts,
		"data": map[string]any{
			"node":          map[string]any{"type": 0, "id": 1, "childNodes": []any{map[string]any{"type": 2, "id": 2, "tagName": "body", "childNodes": body}}},
			"initialOffset": map[string]any{"left": 0, "top": 0},
		},
	})

	raw, _ := json.Marshal(events)
	n := len(raw)
	for n < size {
		ts += int64(10 + rng.IntN(60))
		var data map[string]any
		switch rng.IntN(4) {
		case 0:
			var pos []any
			for i := range 1 + rng.IntN(8) {
				pos = append(pos, map[string]any{"x": rng.IntN(1440), "y": rng.IntN(900), "id": rng.IntN(id) + 1, "timeOffset": -10 * i})
			}
			data = map[string]any{"source": 1, "positions": pos}
		case 1:
			data = map[string]any{"source": 0, "texts": []any{}, "attributes": []any{map[string]any{"id": rng.IntN(id) + 1, "attributes": map[string]any{"class": "active"}}},
				"removes": []any{}, "adds": []any{map[string]any{"parentId": rng.IntN(id) + 1, "nextId": nil, "node": map[string]any{"type": 3, "id": id + 1, "textContent": "Added to cart"}}}}
			id++
		case 2:
			data = map[string]any{"source": 3, "id": 1, "x": 0, "y": rng.IntN(4000)}
		default:
			data = map[string]any{"source": 5, "text": "*****", "isChecked": false, "id": rng.IntN(id) + 1}
		}
		ev, _ := json.Marshal(map[string]any{"type": 3, "timestamp": ts, "data": data})
		events = append(events, json.RawMessage(ev))
		n += len(ev) + 1
	}
	raw, _ = json.Marshal(events)
	return raw, Info{EventCount: len(events), FirstTS: first, LastTS: ts, HasFullSnapshot: true}
}

// workloadLike builds about size bytes of incremental rrweb events shaped
// like shared/workload's segments (mouse moves, inputs, text mutations).
func workloadLike(size int) []byte {
	rng := rand.New(rand.NewPCG(7, 7))
	var b bytes.Buffer
	b.WriteByte('[')
	ts := int64(1_760_000_000_000)
	for b.Len() < size {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		ts += 50
		switch rng.IntN(3) {
		case 0:
			fmt.Fprintf(&b, `{"type":3,"data":{"source":1,"positions":[{"x":%d,"y":%d,"id":%d,"timeOffset":0}]},"timestamp":%d}`, rng.IntN(1280), rng.IntN(800), rng.IntN(500), ts)
		case 1:
			fmt.Fprintf(&b, `{"type":3,"data":{"source":5,"text":%q,"isChecked":false,"id":%d},"timestamp":%d}`, strings.Repeat("x", 8+rng.IntN(40)), rng.IntN(500), ts)
		default:
			fmt.Fprintf(&b, `{"type":3,"data":{"source":0,"texts":[{"id":%d,"value":%q}],"attributes":[],"removes":[],"adds":[]},"timestamp":%d}`, rng.IntN(500), strings.Repeat("lorem ipsum ", 2+rng.IntN(16)), ts)
		}
	}
	b.WriteByte(']')
	return b.Bytes()
}
