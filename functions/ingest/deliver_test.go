package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/direct"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
)

// pushPath is the path of a push subscription's endpoint that Ingest
// follows (projects/P/topics/T).
var pushPath = regexp.MustCompile(`^/projects/[^/]+/topics/[^/]+$`)

// packHandler serves a real Pack (an HTTP function reading the request body
// itself) behind a check that the request is the one Ingest means to send:
// a PUT in the direct form to the topic's path.
func packHandler(p *packer.Packer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !pushPath.MatchString(r.URL.Path) || r.Header.Get("Content-Type") != direct.ContentType {
			http.Error(w, "not a direct request", http.StatusBadRequest)
			return
		}
		p.ServeHTTP(w, r)
	})
}

// packConfig is Pack as the dev stack runs it: a short flush age.
func packConfig() packer.Config {
	return packer.Config{
		FlushBytes: 8 << 20, FlushSegments: 1000, FlushAge: 50 * time.Millisecond, MaxConcurrency: 1000,
		MaxBufferBytes: 64 << 20, FlushTimeout: 30 * time.Second,
		Limits: segment.Limits{MaxDecompressed: 8 << 20},
	}
}

// TestDirectDelivery sends one rrweb segment through Ingest with Pack's URL
// set, for each way the direct path can go: Pack stores it and nothing is
// published; or Pack is down, draining, refused by its front with 429, or
// stored it but the answer was lost or came too late, and the segment is
// published to the topic (the Pub/Sub emulator) instead, from where a second
// Pack instance settles it. Every case answers the SDK 200 and ends with the
// segment stored exactly once — or, when the replay is shredded before the
// spilled copy arrives, not at all: the redelivery does not resurrect it. A
// segment past the instance's hold budget is published without calling Pack.
func TestDirectDelivery(t *testing.T) {
	// fronts sit between Ingest and the Pack that takes direct deliveries.
	lost := func(pack http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			pack.ServeHTTP(rec, r)
			if rec.Code/100 != 2 {
				t.Errorf("Pack answered %d before the reply was cut", rec.Code)
			}
			// Pack has stored it; the reply never reaches Ingest.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
		})
	}
	late := func(pack http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			pack.ServeHTTP(rec, r)
			if rec.Code/100 != 2 {
				t.Errorf("Pack answered %d", rec.Code)
			}
			<-r.Context().Done() // past Ingest's PACK_TIMEOUT
		})
	}
	status := func(code int) func(http.Handler) http.Handler {
		return func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				http.Error(w, "no instance", code)
			})
		}
	}
	tests := []struct {
		name  string
		front func(http.Handler) http.Handler // nil: Pack itself
		down  bool                            // nothing listens at PACK_URL
		drain bool                            // the direct Pack is shutting down (503)
		shred bool                            // shred the replay before the spilled copy reaches Pack
		hold  int64                           // PACK_HOLD_BYTES (0: 1 MiB)
		// spilled: the segment went to Pub/Sub, and the Pack reading the
		// subscription settled it as want.
		spilled bool
		want    packer.Result
		rows    int
	}{
		{name: "stored directly", rows: 1},
		{name: "pack down", down: true, spilled: true, want: packer.Stored, rows: 1},
		{name: "pack draining", drain: true, spilled: true, want: packer.Stored, rows: 1},
		{name: "no instance (429)", front: status(http.StatusTooManyRequests), spilled: true, want: packer.Stored, rows: 1},
		{name: "pack failing (500)", front: status(http.StatusInternalServerError), spilled: true, want: packer.Stored, rows: 1},
		{name: "reply lost", front: lost, spilled: true, want: packer.Duplicate, rows: 1},
		{name: "reply too late", front: late, spilled: true, want: packer.Duplicate, rows: 1},
		{name: "reply lost, then shredded", front: lost, shred: true, spilled: true, want: packer.Shredded, rows: 0},
		{name: "hold budget full", hold: 16, spilled: true, want: packer.Stored, rows: 1},
	}
	d := testenv.NewDeps(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvDB(t, testConfig(), d.DB)
			key := e.key(42, "http://localhost:8080")
			direct := packer.New(packConfig(), d.DB, d.Blobs, d.Keyring(), failReject{t})
			defer direct.Close()
			if tc.drain {
				direct.Drain()
			}
			var h http.Handler = packHandler(direct)
			if tc.front != nil {
				h = tc.front(h)
			}
			var calls atomic.Int64
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				h.ServeHTTP(w, r)
			}))
			defer hs.Close()
			packURL := hs.URL
			if tc.down {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				packURL = "http://" + ln.Addr().String()
				ln.Close()
			}
			client, err := PackClient(t.Context(), packURL, 4)
			if err != nil {
				t.Fatal(err)
			}
			hold := tc.hold
			if hold == 0 {
				hold = 1 << 20
			}
			dd := NewDirect(client, packURL, "unused", e.topic, time.Second, hold)
			e.srv.pub.DeliverFirst(dd)

			replay := uuid.New()
			body := rrwebEvents(1_700_000_000_000, "direct")
			path := fmt.Sprintf("/v1/projects/42/replays/%s/segments/0?key=%s", replay, key)
			if s, c, _ := e.post(path, body, "Origin", "http://localhost:8080"); s != 200 {
				t.Fatalf("ingest: %d %s", s, c)
			}
			st := dd.Stats()
			if tc.spilled != (st.Spilled == 1) || st.Delivered+st.Spilled != 1 {
				t.Fatalf("direct stats %+v, want spilled=%v", st, tc.spilled)
			}
			if tc.hold != 0 && calls.Load() != 0 {
				t.Errorf("Pack was called %d time(s) with the hold budget full", calls.Load())
			}
			if tc.shred {
				if _, err := d.DB.ShredReplays(t.Context(), 42, []uuid.UUID{replay}, "test"); err != nil {
					t.Fatal(err)
				}
			}
			if tc.spilled {
				sub := packer.New(packConfig(), d.DB, d.Blobs, d.Keyring(), failReject{t})
				defer sub.Close()
				if got := deliver(t, e, sub, 1); got[0] != tc.want {
					t.Errorf("the spilled copy was settled as %s, want %s", got[0], tc.want)
				}
			} else if got := e.received(time.Second); len(got) != 0 {
				t.Errorf("%d message(s) published for a segment Pack stored directly", len(got))
			}
			meta, err := d.DB.ReplayMeta(t.Context(), 42, replay)
			if err != nil {
				t.Fatal(err)
			}
			// Every row of the replay, whatever Serve would show.
			var rows int
			if err := d.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM segments WHERE project_id = 42 AND replay_id = $1`, replay).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != tc.rows || (!tc.shred && meta.SegmentCount != tc.rows) || tc.shred != (meta.DeletedAt != nil) {
				t.Errorf("%d segment row(s), replay counts %d, tombstone %v; want %d row(s)", rows, meta.SegmentCount, meta.DeletedAt, tc.rows)
			}
		})
	}
}

// received returns what arrives on e's subscription within quiet.
func (e *env) received(quiet time.Duration) []published {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	var (
		mu  sync.Mutex
		got []published
	)
	err := e.client.Subscriber(e.sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, published{Attrs: m.Attributes, Data: m.Data})
	})
	if err != nil && ctx.Err() == nil {
		e.t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

// TestDirectBody: the body Ingest posts reads back, with Pack's decoder,
// as the message's attributes and exact payload under a fresh id, and its
// announced size is its length.
func TestDirectBody(t *testing.T) {
	d := NewDirect(http.DefaultClient, "http://127.0.0.1:1", "p", "segments", time.Second, 1<<20)
	attrs := map[string]string{"replay_id": "r", "url": "http://x/\"quoted\"\n\u2028</script>"}
	ids := map[string]bool{}
	for _, n := range []int{0, 1, 2, 3, 4, 3071, 3072, 3073, 4 << 10, 10_000, 1 << 20} {
		data := make([]byte, n)
		rand.Read(data)
		b, err := d.directBody(message{attrs: attrs, data: data})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(b.reader())
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(raw)) != b.size() {
			t.Errorf("%d bytes: body is %d bytes, size() says %d", n, len(raw), b.size())
		}
		m, err := packer.DecodeDirect(raw)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(m.Data, data) || !cmp.Equal(m.Attributes, attrs) || !strings.HasPrefix(m.ID, "direct-") || ids[m.ID] {
			t.Errorf("%d bytes: read back as data %d bytes, attributes %v, id %q (seen before: %v)",
				n, len(m.Data), m.Attributes, m.ID, ids[m.ID])
		}
		ids[m.ID] = true
	}
	// Attributes past the form's limits (Pub/Sub's) are an error, which
	// makes the Publisher publish the message, where Pub/Sub refuses it too.
	if _, err := d.directBody(message{attrs: map[string]string{"url": strings.Repeat("x", 2000)}}); err == nil {
		t.Error("a 2,000-byte attribute value made a body")
	}
}

// TestDirectSpillsWhenPackIsFull: two segments reach one Pack whose buffer
// holds only one of them while it waits for its batch's age; Pack refuses
// the other with 429 (its own overload answer, not a stand-in), Ingest
// publishes that one, and both end up stored once.
func TestDirectSpillsWhenPackIsFull(t *testing.T) {
	d := testenv.NewDeps(t)
	e := newEnvDB(t, testConfig(), d.DB)
	key := e.key(42, "http://localhost:8080")
	cfg := packConfig()
	cfg.FlushAge = 3 * time.Second // the first segment holds its space this long
	// One segment's direct body (a 128 KiB buffer; after sealing, its
	// ~75 KiB sealed copy), not two.
	cfg.MaxBufferBytes = 180 << 10
	p := packer.New(cfg, d.DB, d.Blobs, d.Keyring(), failReject{t})
	defer p.Close()
	hs := httptest.NewServer(packHandler(p))
	defer hs.Close()
	client, err := PackClient(t.Context(), hs.URL, 4)
	if err != nil {
		t.Fatal(err)
	}
	dd := NewDirect(client, hs.URL, "unused", e.topic, 10*time.Second, 1<<20)
	e.srv.pub.DeliverFirst(dd)

	// Incompressible text: sealing does not shrink what the first holds.
	noise := make([]byte, 75<<10)
	rand.Read(noise)
	replays := []uuid.UUID{uuid.New(), uuid.New()}
	var wg sync.WaitGroup
	for _, replay := range replays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := rrwebEvents(1_700_000_000_000, base64.StdEncoding.EncodeToString(noise))
			path := fmt.Sprintf("/v1/projects/42/replays/%s/segments/0?key=%s", replay, key)
			if s, c, _ := e.post(path, body, "Origin", "http://localhost:8080"); s != 200 {
				t.Errorf("ingest: %d %s", s, c)
			}
		}()
	}
	wg.Wait()
	if st := dd.Stats(); st.Delivered != 1 || st.Spilled != 1 || p.Stats().Overloaded.Load() != 1 {
		t.Fatalf("direct %+v, Pack refused %d; want one stored directly and one refused and spilled", st, p.Stats().Overloaded.Load())
	}
	if got := deliver(t, e, p, 1); got[0] != packer.Stored {
		t.Errorf("the spilled segment was settled as %s", got[0])
	}
	for _, replay := range replays {
		var rows int
		if err := d.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM segments WHERE project_id = 42 AND replay_id = $1`, replay).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 1 {
			t.Errorf("replay %s: %d segment rows, want 1", replay, rows)
		}
	}
}

// TestDirectConcurrentRetry: an SDK retry that reaches Pack while the first
// copy still waits for its batch is stored once, and both are answered 200
// without publishing anything.
func TestDirectConcurrentRetry(t *testing.T) {
	d := testenv.NewDeps(t)
	e := newEnvDB(t, testConfig(), d.DB)
	key := e.key(42, "http://localhost:8080")
	cfg := packConfig()
	cfg.FlushAge = time.Second // both copies arrive while the batch is open
	p := packer.New(cfg, d.DB, d.Blobs, d.Keyring(), failReject{t})
	defer p.Close()
	hs := httptest.NewServer(packHandler(p))
	defer hs.Close()
	client, err := PackClient(t.Context(), hs.URL, 4)
	if err != nil {
		t.Fatal(err)
	}
	dd := NewDirect(client, hs.URL, "unused", e.topic, 10*time.Second, 1<<20)
	e.srv.pub.DeliverFirst(dd)

	replay := uuid.New()
	body := rrwebEvents(1_700_000_000_000, "retried")
	path := fmt.Sprintf("/v1/projects/42/replays/%s/segments/0?key=%s", replay, key)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, c, _ := e.post(path, body, "Origin", "http://localhost:8080"); s != 200 {
				t.Errorf("ingest: %d %s", s, c)
			}
		}()
	}
	wg.Wait()
	if dd.Stats() != (DirectStats{Delivered: 2}) {
		t.Errorf("direct %+v; want both delivered", dd.Stats())
	}
	var rows int
	if err := d.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM segments WHERE project_id = 42 AND replay_id = $1`, replay).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if meta, err := d.DB.ReplayMeta(t.Context(), 42, replay); err != nil || rows != 1 || meta.SegmentCount != 1 {
		t.Errorf("%d segment rows, replay %+v (%v); want one", rows, meta, err)
	}
	if got := e.received(time.Second); len(got) != 0 {
		t.Errorf("%d message(s) published", len(got))
	}
}

// TestPackClientIDToken: over https every request to Pack carries the ID
// token the metadata server issues for Pack's origin as audience (here a
// local metadata server, as GCE_METADATA_HOST points the library at one);
// when no token can be had there is no client (and a failed refresh fails
// the request, which spills): Pack is never called unauthenticated.
func TestPackClientIDToken(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("HOME", t.TempDir()) // no gcloud application default credentials
	var failToken atomic.Bool
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Metadata-Flavor", "Google")
		if r.Header.Get("Metadata-Flavor") != "Google" || r.URL.Path != "/computeMetadata/v1/instance/service-accounts/default/identity" || failToken.Load() {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, "token-for-%s", r.URL.Query().Get("audience"))
	}))
	defer md.Close()
	// The metadata library decides "on GCE" once per process, from this
	// variable first: no earlier test in this package may ask it (the
	// emulator-backed clients here run without credentials, so none do).
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))

	var got []string
	var mu sync.Mutex
	pack := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer pack.Close()
	client, err := packClient(t.Context(), pack.URL, pack.Client().Transport)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirect(client, pack.URL, "p", "segments", 5*time.Second, 1<<20)
	if err := d.deliver(t.Context(), message{attrs: map[string]string{"a": "b"}, data: []byte("[]")}); err != nil {
		t.Fatal(err)
	}
	if want := "Bearer token-for-" + pack.URL; len(got) != 1 || got[0] != want {
		t.Errorf("Pack saw Authorization %q, want %q", got, want)
	}

	// No token to be had: building the client fails (it fetches one at once).
	failToken.Store(true)
	if _, err := packClient(t.Context(), "https://pack.example", pack.Client().Transport); err == nil {
		t.Error("a client was built without an ID token")
	}
}
