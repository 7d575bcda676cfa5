package workload

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Recording returns the segments of one rrweb-shaped recording: a meta
// event and a full snapshot of a page built from a repetitive DOM (the same
// components, class lists and words again and again, as real pages are),
// then incremental events — batched mouse moves with small deltas, scrolls,
// inputs, attribute changes and mutations that add component subtrees. Its
// compression ratios are close to real recordings' (gzip about 10:1), unlike
// Segment's random text (about 3:1), so stored-bytes measurements use both.
// Each segment holds about segmentBytes of JSON; the first also holds a
// snapshot of about snapshotBytes.
func Recording(rng *rand.Rand, segments, segmentBytes, snapshotBytes int, startMS int64) [][]byte {
	r := &recorder{rng: rng, ts: startMS, nextID: 1}
	out := make([][]byte, segments)
	for i := range out {
		var b bytes.Buffer
		b.Grow(segmentBytes + snapshotBytes + 1024)
		b.WriteByte('[')
		n := 0
		emit := func(s string) {
			if n > 0 {
				b.WriteByte(',')
			}
			b.WriteString(s)
			n++
		}
		if i == 0 {
			emit(fmt.Sprintf(`{"type":%d,"data":{"href":"https://shop.example.test/checkout/cart","width":1440,"height":900},"timestamp":%d}`, typeMeta, r.tick()))
			emit(fmt.Sprintf(`{"type":%d,"data":{"node":%s,"initialOffset":{"left":0,"top":0}},"timestamp":%d}`, typeFullSnapshot, r.page(snapshotBytes), r.tick()))
		}
		for b.Len() < segmentBytes {
			emit(r.incremental())
		}
		b.WriteByte(']')
		out[i] = b.Bytes()
	}
	return out
}

type recorder struct {
	rng    *rand.Rand
	ts     int64
	nextID int
	x, y   int
}

func (r *recorder) tick() int64 {
	r.ts += int64(16 + r.rng.IntN(120))
	return r.ts
}

var (
	words = strings.Fields(`the cart total shipping free returns order add to remove
		size color blue black white small medium large quantity price sale new
		checkout continue shopping account sign in help delivery estimated days
		item items your our best seller rated reviews stars save for later`)
	tags    = []string{"div", "div", "div", "span", "a", "button", "li", "p", "img", "svg"}
	classes = []string{
		"flex items-center justify-between px-4 py-2",
		"text-sm font-medium text-gray-700",
		"mt-2 grid grid-cols-2 gap-4",
		"btn btn-primary rounded-md shadow-sm",
		"product-card relative overflow-hidden",
		"sr-only", "w-full h-auto object-cover", "price text-lg font-semibold",
	}
)

func (r *recorder) phrase(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = words[r.rng.IntN(len(words))]
	}
	return strings.Join(s, " ")
}

// page returns a serialized document node of about size bytes.
func (r *recorder) page(size int) string {
	var b strings.Builder
	b.Grow(size + 1024)
	fmt.Fprintf(&b, `{"type":0,"childNodes":[{"type":1,"name":"html","publicId":"","systemId":"","id":%d},{"type":2,"tagName":"html","attributes":{"lang":"en"},"childNodes":[`, r.id())
	first := true
	for b.Len() < size {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(r.component(3))
	}
	fmt.Fprintf(&b, `],"id":%d}],"id":%d}`, r.id(), r.id())
	return b.String()
}

// component returns a serialized element subtree depth levels deep.
func (r *recorder) component(depth int) string {
	tag := tags[r.rng.IntN(len(tags))]
	attrs := fmt.Sprintf(`{"class":%q}`, classes[r.rng.IntN(len(classes))])
	switch tag {
	case "a":
		attrs = fmt.Sprintf(`{"class":%q,"href":"/products/%d"}`, classes[r.rng.IntN(len(classes))], r.rng.IntN(400))
	case "img":
		attrs = fmt.Sprintf(`{"class":%q,"src":"https://cdn.example.test/img/%d.webp","alt":%q}`, classes[6], r.rng.IntN(400), r.phrase(3))
	}
	var kids []string
	if depth > 0 {
		for range 1 + r.rng.IntN(3) {
			kids = append(kids, r.component(depth-1))
		}
	} else {
		kids = append(kids, fmt.Sprintf(`{"type":3,"textContent":%q,"id":%d}`, r.phrase(1+r.rng.IntN(6)), r.id()))
	}
	return fmt.Sprintf(`{"type":2,"tagName":%q,"attributes":%s,"childNodes":[%s],"id":%d}`, tag, attrs, strings.Join(kids, ","), r.id())
}

func (r *recorder) id() int { r.nextID++; return r.nextID }

func (r *recorder) incremental() string {
	switch k := r.rng.IntN(10); {
	case k < 5: // a batch of mouse moves
		var p []string
		for i := range 3 + r.rng.IntN(8) {
			r.x = max(0, min(1440, r.x+r.rng.IntN(41)-20))
			r.y = max(0, min(900, r.y+r.rng.IntN(41)-20))
			p = append(p, fmt.Sprintf(`{"x":%d,"y":%d,"id":%d,"timeOffset":%d}`, r.x, r.y, 40+r.rng.IntN(200), -i*16))
		}
		return fmt.Sprintf(`{"type":%d,"data":{"source":1,"positions":[%s]},"timestamp":%d}`, typeIncremental, strings.Join(p, ","), r.tick())
	case k < 7: // scroll
		return fmt.Sprintf(`{"type":%d,"data":{"source":3,"id":1,"x":0,"y":%d},"timestamp":%d}`, typeIncremental, r.rng.IntN(4000), r.tick())
	case k < 8: // input
		return fmt.Sprintf(`{"type":%d,"data":{"source":5,"text":%q,"isChecked":false,"id":%d},"timestamp":%d}`, typeIncremental, r.phrase(1+r.rng.IntN(3)), 40+r.rng.IntN(200), r.tick())
	case k < 9: // attribute change
		return fmt.Sprintf(`{"type":%d,"data":{"source":0,"texts":[],"attributes":[{"id":%d,"attributes":{"class":%q}}],"removes":[],"adds":[]},"timestamp":%d}`, typeIncremental, 40+r.rng.IntN(200), classes[r.rng.IntN(len(classes))], r.tick())
	default: // a component added
		return fmt.Sprintf(`{"type":%d,"data":{"source":0,"texts":[],"attributes":[],"removes":[{"parentId":%d,"id":%d}],"adds":[{"parentId":%d,"nextId":null,"node":%s}]},"timestamp":%d}`,
			typeIncremental, 40+r.rng.IntN(200), 40+r.rng.IntN(200), 40+r.rng.IntN(200), r.component(1+r.rng.IntN(2)), r.tick())
	}
}
