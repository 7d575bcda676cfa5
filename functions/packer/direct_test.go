package packer

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/direct"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
)

// directBody is the direct form of m.
func directBody(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := direct.AppendBlock(nil, m.ID, m.Attributes)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, m.Data...)
}

// directRequest is a direct request with the given body, as Ingest sends
// it (PUT).
func directRequest(body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPut, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", direct.ContentType)
	return req
}

// rawBlock is a block written by hand: raw is the id, then key, value, …
// (for what direct.AppendBlock refuses to write).
func rawBlock(count int, raw ...string) []byte {
	var inner []byte
	inner = binary.BigEndian.AppendUint16(inner, uint16(len(raw[0])))
	inner = append(inner, raw[0]...)
	inner = binary.BigEndian.AppendUint16(inner, uint16(count))
	for _, s := range raw[1:] {
		inner = binary.BigEndian.AppendUint16(inner, uint16(len(s)))
		inner = append(inner, s...)
	}
	return append(binary.BigEndian.AppendUint32([]byte("RVD1"), uint32(len(inner))), inner...)
}

// TestServeDirect: Pack takes the direct form when its Content-Type says
// so; a well-formed direct request goes through the same validation as a
// push (an attribute that is missing or bad is rejected to the reject
// topic, a payload over the limit too); a malformed one (the block cut,
// repeated or oversized attributes, a truncated body, a push body under
// the direct type) is answered 400 and neither stored nor published, so
// that Ingest publishes the message instead; a body over the bound is 413,
// and a later form of ours 415. No log line holds a byte of a payload or
// attribute value.
func TestServeDirect(t *testing.T) {
	d := testenv.NewDeps(t)
	cfg := testConfig()
	cfg.Limits = segment.Limits{MaxPayload: 64 << 10}
	rej := &keptRejects{}
	p := newPacker(t, d, cfg, rej)

	var logs bytes.Buffer
	var logMu sync.Mutex
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)

	const marker = "MARKER-direct-4b1d"
	seg := []byte(`[{"type":4,"timestamp":1700000000000,"data":{"href":"` + marker + `"}}]`)
	replay := uuid.New()
	good := func(segID int) Message { return message(1, replay, segID, seg) }
	attrs := func(segID int) []string {
		return []string{"project_id", "1", "replay_id", replay.String(), "segment_id", fmt.Sprint(segID)}
	}
	withType := func(body []byte, ct string) *http.Request {
		r := directRequest(body)
		r.Header.Set("Content-Type", ct)
		return r
	}
	overLimit := bytes.Repeat([]byte(" "), 64<<10+1)
	tooBig := append(rawBlock(0, "m1"), make([]byte, maxDirect(cfg.Limits))...)
	tests := []requestCase{
		{"direct", directRequest(directBody(t, good(0))), http.StatusOK, 1, ""},
		{"direct, type in other case", withType(directBody(t, good(1)), strings.ToUpper(direct.ContentType)), http.StatusUnsupportedMediaType, 1, ""},
		{"a later direct form", withType(directBody(t, good(1)), "application/vnd.replayvault.segment-v2"), http.StatusUnsupportedMediaType, 1, ""},
		{"direct type with a parameter", withType(directBody(t, good(1)), direct.ContentType+"; charset=utf-8"), http.StatusUnsupportedMediaType, 1, ""},
		// Well formed, so validated as a push's message is: rejected for
		// what it holds, and acked.
		{"no attributes", directRequest(append(rawBlock(0, "m1"), seg...)), http.StatusOK, 1, segment.ReasonMissingProjectID},
		{"replay id not a UUID", directRequest(append(rawBlock(3, "m1", "project_id", "1", "replay_id", marker, "segment_id", "1"), seg...)), http.StatusOK, 1, segment.ReasonBadReplayID},
		{"payload over MAX_PAYLOAD", directRequest(directBody(t, message(1, replay, 1, overLimit))), http.StatusOK, 1, segment.ReasonPayloadTooLarge},
		{"payload not JSON", directRequest(directBody(t, message(1, replay, 1, []byte(marker)))), http.StatusOK, 1, segment.ReasonNotJSON},
		// Malformed: 400, nothing settled.
		{"empty body", directRequest(nil), http.StatusBadRequest, 1, ""},
		{"a push body", directRequest(mustPushBody(t, good(1))), http.StatusBadRequest, 1, ""},
		{"duplicate attribute", directRequest(append(rawBlock(4, append([]string{"m1"}, append(attrs(1), "replay_id", marker)...)...), seg...)), http.StatusBadRequest, 1, ""},
		{"attribute count too high", directRequest(append(rawBlock(4, append([]string{"m1"}, attrs(1)...)...), seg...)), http.StatusBadRequest, 1, ""},
		{"oversized attribute value", directRequest(append(rawBlock(4, append([]string{"m1"}, append(attrs(1), "url", strings.Repeat(marker, 100))...)...), seg...)), http.StatusBadRequest, 1, ""},
		{"oversized attribute key", directRequest(append(rawBlock(4, append([]string{"m1"}, append(attrs(1), strings.Repeat("k", 300), marker)...)...), seg...)), http.StatusBadRequest, 1, ""},
		{"no message id", directRequest(append(rawBlock(3, append([]string{""}, attrs(1)...)...), seg...)), http.StatusBadRequest, 1, ""},
		{"block cut", directRequest(rawBlock(3, append([]string{"m1"}, attrs(1)...)...)[:30]), http.StatusBadRequest, 1, ""},
		{"truncated body", func() *http.Request {
			body := directBody(t, good(1))
			r := directRequest(body[:len(body)-10])
			r.ContentLength = int64(len(body))
			return r
		}(), http.StatusBadRequest, 1, ""},
		// Bounds.
		{"over the body bound", directRequest(tooBig), http.StatusRequestEntityTooLarge, 1, ""},
		{"over the body bound, no length", func() *http.Request {
			r := directRequest(nil)
			r.Body = io.NopCloser(bytes.NewReader(tooBig))
			r.ContentLength = -1
			return r
		}(), http.StatusRequestEntityTooLarge, 1, ""},
		{"direct, no length", func() *http.Request {
			r := directRequest(nil)
			r.Body = io.NopCloser(bytes.NewReader(directBody(t, good(2))))
			r.ContentLength = -1
			return r
		}(), http.StatusOK, 2, ""},
		// PUT is for the direct form only; POST takes it too.
		{"PUT of a push", func() *http.Request {
			r := pushRequest(t, good(3))
			r.Method = http.MethodPut
			return r
		}(), http.StatusUnsupportedMediaType, 2, ""},
		{"direct by POST", func() *http.Request {
			r := directRequest(directBody(t, good(3)))
			r.Method = http.MethodPost
			return r
		}(), http.StatusOK, 3, ""},
		{"DELETE", func() *http.Request {
			r := directRequest(directBody(t, good(4)))
			r.Method = http.MethodDelete
			return r
		}(), http.StatusMethodNotAllowed, 3, ""},
		// Under Pub/Sub's type the same bytes, POSTed, are a push, and no
		// push: what a Pack from before the direct form would do with a
		// POST, which is why Ingest PUTs.
		{"direct body as JSON", func() *http.Request {
			r := withType(directBody(t, good(4)), "application/json")
			r.Method = http.MethodPost
			return r
		}(), http.StatusOK, 3, "bad_envelope"},
		{"push still taken", pushRequest(t, good(4)), http.StatusOK, 4, ""},
	}
	checkRequests(t, p, rej, tests)
	logMu.Lock()
	logged := logs.String()
	logMu.Unlock()
	if !strings.Contains(logged, "direct request refused") {
		t.Errorf("no refusal was logged:\n%s", logged)
	}
	if strings.Contains(logged, marker) || strings.Contains(logged, "MARKER") {
		t.Errorf("logs hold request bytes:\n%s", logged)
	}
}

func mustPushBody(t testing.TB, m Message) []byte {
	t.Helper()
	r := pushRequest(t, m)
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDirectAndPushStoreTheSame: the same segments, once in the direct
// form and once as pushes (under two replay ids, with slices and issue
// detection on), are stored as the same rows: same type, encoding, sizes,
// event counts, timestamps and content read back. A redelivery in the
// other form is a duplicate in both directions: no second row.
func TestDirectAndPushStoreTheSame(t *testing.T) {
	d := testenv.NewDeps(t)
	cfg := testConfig()
	cfg.DeriveSlices = true
	p := newPacker(t, d, cfg, nil)
	payloads := [][]byte{
		[]byte(`[{"type":4,"timestamp":1700000000000,"data":{"href":"https://example.com/a"}},{"type":2,"timestamp":1700000000001,"data":{"node":{}}}]`),
		[]byte(`[{"type":6,"timestamp":1700000000100,"data":{"plugin":"rrweb/console@1","payload":{"level":"error","payload":["\"boom\""]}}},{"type":3,"timestamp":1700000000200,"data":{"source":2}}]`),
		segment.Compress([]byte(`[{"type":3,"timestamp":1700000000300,"data":{"source":1,"positions":[]}}]`)),
	}
	viaDirect, viaPush := uuid.New(), uuid.New()
	var wg sync.WaitGroup
	for i, pl := range payloads {
		wg.Go(func() {
			if code := serve(p, directRequest(directBody(t, message(3, viaDirect, i, pl)))); code != http.StatusOK {
				t.Errorf("direct %d: status %d", i, code)
			}
		})
		wg.Go(func() {
			if code := serve(p, pushRequest(t, message(3, viaPush, i, pl))); code != http.StatusOK {
				t.Errorf("push %d: status %d", i, code)
			}
		})
	}
	wg.Wait()
	// Stored counts the derived slices too: the same number for each form.
	stored := p.Stats().Stored.Load()
	if stored < int64(2*len(payloads)) || stored%2 != 0 {
		t.Fatalf("%d stored, want at least %d, as many for each form", stored, 2*len(payloads))
	}
	compare := func() {
		t.Helper()
		byReplay := map[uuid.UUID][]row{}
		for _, x := range rows(t, d) {
			byReplay[x.replay] = append(byReplay[x.replay], x)
		}
		a, b := byReplay[viaDirect], byReplay[viaPush]
		for _, rs := range [][]row{a, b} {
			slices.SortFunc(rs, func(x, y row) int { return cmp.Or(cmp.Compare(x.segID, y.segID), strings.Compare(x.typ, y.typ)) })
		}
		if len(a) != len(b) || len(a) < len(payloads) {
			t.Fatalf("%d rows from direct requests, %d from pushes; want the same, at least %d", len(a), len(b), len(payloads))
		}
		keks := d.KEKCache()
		for i := range a {
			x, y := a[i], b[i]
			if x.segID != y.segID || x.typ != y.typ || x.enc != y.enc || x.stop-x.start != y.stop-y.start ||
				x.events != y.events || x.firstTS != y.firstTS || x.lastTS != y.lastTS || x.hasFull != y.hasFull {
				t.Errorf("row %d differs:\ndirect %+v\npush   %+v", i, x, y)
			}
			pa, err := open(context.Background(), d, keks, x)
			if err != nil {
				t.Fatal(err)
			}
			pb, err := open(context.Background(), d, keks, y)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pa, pb) {
				t.Errorf("row %d (%s %d): content differs", i, x.typ, x.segID)
			}
		}
	}
	compare()
	// Redeliveries across forms.
	for i, pl := range payloads {
		if code := serve(p, pushRequest(t, message(3, viaDirect, i, pl))); code != http.StatusOK {
			t.Errorf("push of a direct segment %d: status %d", i, code)
		}
		if code := serve(p, directRequest(directBody(t, message(3, viaPush, i, pl)))); code != http.StatusOK {
			t.Errorf("direct of a pushed segment %d: status %d", i, code)
		}
	}
	if st, dup := p.Stats().Stored.Load(), p.Stats().Duplicate.Load(); st != stored || dup != stored {
		// Each segment's slices are duplicates too.
		t.Errorf("after redelivery in the other form: %d stored, %d duplicates; want %d and %d", st, dup, stored, stored)
	}
	compare()
}

// TestDirectBufferOutlivesPayload: a direct request's payload is its body's
// pooled buffer, which goes back to the pool only once the payload is
// sealed into a copy (or rejected, or filtered). Many concurrent direct requests of one size class, each with
// its own payload, must each store exactly their own bytes: a buffer given
// back while its payload was still being validated or sealed would be
// overwritten by another request's body.
func TestDirectBufferOutlivesPayload(t *testing.T) {
	d := testenv.NewDeps(t)
	cfg := testConfig()
	cfg.FlushAge = 20 * time.Millisecond //: many flushes, buffers back in the pool often
	p := newPacker(t, d, cfg, nil)
	replay := uuid.New()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 200
	want := make(map[int][]byte, n)
	for i := range n {
		// About 20 KB of JSON each (the 32 KiB class; gzip barely shrinks
		// the random hex).
		var b strings.Builder
		b.WriteString(`[`)
		for j := range 200 {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"type":3,"timestamp":%d,"data":{"source":5,"text":"%016x%016x%016x%016x"}}`,
				1700000000000+j, rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64())
		}
		b.WriteString(`]`)
		want[i] = []byte(b.String())
	}
	// Odd segments go as gzip, which Pack stores as uploaded: sealing then
	// reads the payload itself, the body's buffer.
	payload := func(i int) []byte {
		if i%2 == 0 {
			return want[i]
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(want[i])
		zw.Close()
		return gz.Bytes()
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if code := serve(p, directRequest(directBody(t, message(4, replay, i, payload(i))))); code != http.StatusOK {
				t.Errorf("segment %d: status %d", i, code)
			}
		})
	}
	wg.Wait()
	keks := d.KEKCache()
	got := 0
	for _, x := range rows(t, d) {
		if x.replay != replay || x.typ != "recording" {
			continue
		}
		got++
		pt, err := open(context.Background(), d, keks, x)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pt, want[x.segID]) {
			t.Errorf("segment %d stored other bytes than it was sent", x.segID)
		}
	}
	if got != n {
		t.Errorf("%d segments stored, want %d", got, n)
	}
}

// TestDirectHold: a direct request reserves its body's buffer and nothing
// for a decoded copy: less than a push of the same payload, never less
// than the buffer it is read into; unknown or oversized lengths reserve
// the largest direct body.
func TestDirectHold(t *testing.T) {
	lim := segment.Limits{MaxPayload: 1 << 20}
	for _, payload := range []int64{0, 100, 16 << 10, 30 << 10, 200 << 10, 1 << 20} {
		body := payload + 200
		pushBody := (payload+2)/3*4 + 300
		dh, ph := directHold(body, lim), pushHold(pushBody, lim)
		if dh < int64(cap(pushBuffer(body))) || dh < body {
			t.Errorf("%d-byte payload: direct hold %d below its buffer", payload, dh)
		}
		if dh >= ph {
			t.Errorf("%d-byte payload: direct hold %d, push hold %d; want less", payload, dh, ph)
		}
	}
	for _, n := range []int64{-1, maxDirect(lim) + 1, 1 << 40} {
		if got := directHold(n, lim); got != maxDirect(lim) {
			t.Errorf("length %d: hold %d, want %d", n, got, maxDirect(lim))
		}
	}
}

// BenchmarkTakeRequest reads and decodes the request for one 30 KB
// segment in each form, as ServeHTTP does (pooled body buffer, decode,
// buffer given back), in one run: what the direct form saves Pack per
// segment before its own work starts.
func BenchmarkTakeRequest(b *testing.B) {
	data := make([]byte, 30<<10)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	m := message(1, uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), 3, data)
	lim := segment.Limits{}
	for _, c := range []struct {
		name string
		body []byte
		take func(body []byte) (Message, error)
	}{
		{"direct", directBody(b, m), DecodeDirect},
		{"pubsub", mustPushBody(b, m), DecodePush},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			rd := bytes.NewReader(c.body)
			for b.Loop() {
				rd.Reset(c.body)
				req.Body, req.ContentLength = io.NopCloser(rd), int64(len(c.body))
				body, err := readBody(req, maxPush(lim), ErrPushTooLarge, pushBuffer)
				if err != nil {
					b.Fatal(err)
				}
				got, err := c.take(body)
				if err != nil || len(got.Data) != len(data) {
					b.Fatal(err)
				}
				releasePushBuffer(body)
			}
		})
	}
}
