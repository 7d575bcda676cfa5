package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/telemetry"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestRoundTrip packs several replays with the real packer, interleaved
// across many small blobs in mixed encodings, and reads them back through
// the HTTP API: exactly the original events, in order, in both formats,
// for full and partial ranges.
func TestRoundTrip(t *testing.T) {
	e := newEnv(t, defaults())
	rng := rand.New(rand.NewPCG(1, 2))
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	replays := map[uuid.UUID][]seg{
		a: makeSegments(rng, 1, a, "", 25, 4000),
		b: makeSegments(rng, 1, b, "", 40, 2000),
		c: makeSegments(rng, 2, c, "", 15, 6000),
	}
	console := makeSegments(rng, 1, a, "console", 5, 1000)
	var all []seg
	for _, segs := range replays {
		all = append(all, segs...)
	}
	all = append(all, console...)
	// In random order: each blob holds segments from all over each replay.
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	pack(t, e.d, 9, all)

	for id, segs := range replays {
		if n := distinctBlobs(segmentRows(t, e.d, segs[0].project, id)); n < 3 {
			t.Fatalf("replay %s lies in %d blobs; the test wants several", id, n)
		}
	}

	ranges := []struct {
		query    string
		from, to int // inclusive, clipped to the replay
	}{
		{"", 0, 1 << 20},
		{"segments=0-0", 0, 0},
		{"segments=2-6", 2, 6},
		{"segments=3", 3, 3}, // the empty segment alone
		{"segments=7", 7, 7},
		{"segments=10-", 10, 1 << 20},
		{"segments=100-200", 100, 200},
	}
	// The production settings; reads split small, with a window smaller
	// than a read; one read per segment, each started only when needed.
	configs := []struct {
		name string
		cfg  Config
	}{
		{"defaults", defaults()},
		{"small reads", Config{CoalesceGapBytes: 1 << 20, MaxReadBytes: 8 << 10, ReadParallelism: 3, WindowBytes: 6 << 10}},
		{"one read per segment", Config{CoalesceGapBytes: 0, ReadParallelism: 1, WindowBytes: 1}},
	}
	for _, c := range configs {
		url := e.server(c.cfg, nil, nil, nil)
		for id, segs := range replays {
			project := segs[0].project
			tok := token(t, project)
			for _, rg := range ranges {
				want := segs[min(rg.from, len(segs)):min(rg.to+1, len(segs))]
				t.Run(fmt.Sprintf("%s/%s/%s/json", c.name, id, rg.query), func(t *testing.T) {
					resp := get(t, recordingURL(url, project, id, rg.query), tok)
					checkHeaders(t, resp, "application/json")
					body := readAll(t, resp)
					got := compactEvents(t, body)
					if diff := cmp.Diff(events(t, want), got, cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("events (-want +got):\n%s", diff)
					}
					if len(want) == 0 && string(body) != "[]\n" {
						t.Errorf("empty range: body %q, want []", body)
					}
				})
				t.Run(fmt.Sprintf("%s/%s/%s/ndjson", c.name, id, rg.query), func(t *testing.T) {
					q := "format=ndjson"
					if rg.query != "" {
						q = rg.query + "&" + q
					}
					resp := get(t, recordingURL(url, project, id, q), tok)
					checkHeaders(t, resp, "application/x-ndjson")
					got := ndjsonSegments(t, readAll(t, resp))
					var wantLines [][]string
					for _, s := range want {
						wantLines = append(wantLines, compactEvents(t, s.raw))
					}
					if diff := cmp.Diff(wantLines, got, cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("segments (-want +got):\n%s", diff)
					}
				})
			}
		}
	}

	t.Run("type=console", func(t *testing.T) {
		got := compactEvents(t, readAll(t, get(t, recordingURL(e.url, 1, a, "type=console"), token(t, 1))))
		if diff := cmp.Diff(events(t, console), got); diff != "" {
			t.Errorf("console events (-want +got):\n%s", diff)
		}
	})

	// KEKs are cached: each server unwrapped the one KEK once, however many
	// requests and segments it served.
	if n, want := e.d.KMS.DecryptCalls(), int64(len(configs)+1); n != want {
		t.Errorf("KMS Decrypt calls = %d, want %d", n, want)
	}
}

func checkHeaders(t *testing.T, resp *http.Response, contentType string) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":           contentType,
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestMetadata reads a replay's metadata.
func TestMetadata(t *testing.T) {
	e := newEnv(t, defaults())
	id := uuid.New()
	segs := makeSegments(rand.New(rand.NewPCG(3, 4)), 5, id, "", 12, 3000)
	pack(t, e.d, 5, segs)
	resp := get(t, fmt.Sprintf("%s/v1/projects/5/replays/%s", e.url, id), token(t, 5))
	checkHeaders(t, resp, "application/json")
	var got Metadata
	if err := json.Unmarshal(readAll(t, resp), &got); err != nil {
		t.Fatal(err)
	}
	meta, err := e.d.DB.ReplayMeta(context.Background(), 5, id)
	if err != nil {
		t.Fatal(err)
	}
	var raw int64
	for _, s := range segs {
		raw += int64(len(s.raw))
	}
	if got.ProjectID != 5 || got.ReplayID != id || got.SegmentCount != 12 || got.RetentionDays != 90 ||
		got.RawBytes != raw || got.StoredBytes != meta.StoredBytes || got.StoredBytes <= 0 ||
		got.StartedAtMS == nil || *got.StartedAtMS != 1_700_000_000_000 || got.EndedAtMS == nil ||
		!got.FirstSeen.Equal(meta.FirstSeen) || !got.LastSeen.Equal(meta.LastSeen) || got.DeletedAt != nil {
		t.Errorf("metadata = %+v; database has %+v, raw bytes %d", got, meta, raw)
	}
}

// TestCoalescing: a replay whose 200 segments lie in 3 blobs, interleaved
// with another replay's, is fetched with one ranged read per blob. (On a
// very slow machine a batch may close on its age and make a fourth blob;
// the test then wants four reads.)
func TestCoalescing(t *testing.T) {
	e := newEnv(t, defaults())
	rng := rand.New(rand.NewPCG(5, 6))
	a, b := uuid.New(), uuid.New()
	sa, sb := makeSegments(rng, 1, a, "", 200, 3000), makeSegments(rng, 1, b, "", 200, 3000)
	var segs []seg
	for i := range sa { // interleaved, so each batch holds both replays
		segs = append(segs, sa[i], sb[i])
	}
	packAged(t, e.d, 134, 2*time.Second, segs) // 400 segments: 3 blobs
	rows := segmentRows(t, e.d, 1, a)
	blobs := int64(distinctBlobs(rows))
	if blobs < 3 {
		t.Fatalf("replay lies in %d blobs, want 3", blobs)
	}
	tok := token(t, 1)

	tests := []struct {
		name      string
		cfg       Config
		wantReads int64
	}{
		// One read per blob.
		{"coalesced", Config{CoalesceGapBytes: 1 << 20, MaxReadBytes: 16 << 20}, blobs},
		// Reads split at MaxReadBytes: more reads, still far fewer than
		// segments. (The window is widened: segments were packed in random
		// order, and the span limit would split reads too.)
		{"capped reads", Config{CoalesceGapBytes: 1 << 20, MaxReadBytes: 16 << 10, WindowBytes: 64 << 20}, -1},
		{"coalescing off", Config{CoalesceGapBytes: 0}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blobs := testenv.NewCountingStore(e.d.Blobs, 0)
			url := e.server(tc.cfg, nil, blobs, nil)
			e.d.GCS.ResetCounts()
			got := compactEvents(t, readAll(t, get(t, recordingURL(url, 1, a, ""), tok)))
			if diff := cmp.Diff(events(t, sa), got); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
			reads, server := blobs.Counts().ClassB, e.d.GCS.Counts().Reads
			t.Logf("%d segments in %d blobs: %d ranged reads (fake-gcs-server saw %d)", len(rows), blobs, reads, server)
			if server != reads {
				t.Errorf("fake-gcs-server saw %d reads, the store made %d", server, reads)
			}
			switch {
			case tc.wantReads >= 0 && reads != tc.wantReads:
				t.Errorf("ranged reads = %d, want %d", reads, tc.wantReads)
			case tc.wantReads < 0 && (reads <= 3 || reads > 100):
				t.Errorf("ranged reads = %d, want a few more than 3 and far fewer than 200", reads)
			}
		})
	}
}

// lastRead wraps a Store and records when its last read completed.
type lastRead struct {
	blob.Store
	mu   sync.Mutex
	last time.Time
}

func (l *lastRead) ReadRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	b, err := l.Store.ReadRange(ctx, name, off, n)
	l.done()
	return b, err
}

// OpenRange's read completes when its reader is closed.
func (l *lastRead) OpenRange(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	r, err := l.Store.OpenRange(ctx, name, off, n)
	if err != nil {
		l.done()
		return nil, err
	}
	return closeHook{r, l.done}, nil
}

func (l *lastRead) done() {
	l.mu.Lock()
	l.last = time.Now()
	l.mu.Unlock()
}

// closeHook calls fn after closing the reader.
type closeHook struct {
	io.ReadCloser
	fn func()
}

func (c closeHook) Close() error {
	err := c.ReadCloser.Close()
	c.fn()
	return err
}

// TestStreaming: with latency on every read, the client has the first
// segment before the last read completes. The window is as small as it
// gets, so a read starts only once the writer needs it: the last read
// cannot even start before the first segment was flushed. This is an
// ordering fact, not a timing threshold.
func TestStreaming(t *testing.T) {
	e := newEnv(t, defaults())
	id := uuid.New()
	segs := makeSegments(rand.New(rand.NewPCG(7, 8)), 1, id, "", 60, 3000)
	pack(t, e.d, 20, segs)
	store := &lastRead{Store: testenv.NewCountingStore(e.d.Blobs, 20*time.Millisecond)}
	url := e.server(Config{CoalesceGapBytes: 1 << 20, MaxReadBytes: 8 << 10, ReadParallelism: 2, WindowBytes: 1}, nil, store, nil)

	resp := get(t, recordingURL(url, 1, id, "format=ndjson"), token(t, 1))
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	firstSegment := time.Now()
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if !firstSegment.Before(store.last) {
		t.Errorf("the first segment arrived at %v, after the last read completed at %v", firstSegment, store.last)
	}
	if got := len(ndjsonSegments(t, rest)) + 1; got != len(segs) {
		t.Errorf("segments = %d, want %d", got, len(segs))
	}
}

// TestBuild wires a Server from the environment, as the function does.
func TestBuild(t *testing.T) {
	d := testenv.NewDeps(t)
	id := uuid.New()
	segs := makeSegments(rand.New(rand.NewPCG(9, 10)), 3, id, "", 6, 2000)
	pack(t, d, 3, segs)
	for k, v := range map[string]string{
		"DATABASE_URL":          d.DSN,
		"BUCKET":                testenv.TestBucket,
		"STORAGE_EMULATOR_HOST": d.GCS.Host(),
		"KMS_KEY":               d.KMS.KeyName(),
		"KMS_ENDPOINT":          d.KMS.Endpoint(),
		"JWT_SECRET":            testSecret,
		"CORS_ORIGINS":          "https://app.example.test",
	} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	cfg, err := config.LoadServe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tel, err := telemetry.Setup(ctx, telemetry.Config{Exporter: telemetry.ExporterMemory})
	if err != nil {
		t.Fatal(err)
	}
	s, closeAll, err := Build(ctx, cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	url := serveHTTP(t, s)
	got := compactEvents(t, readAll(t, get(t, recordingURL(url, 3, id, ""), token(t, 3))))
	if diff := cmp.Diff(events(t, segs), got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// The telemetry Build was given saw the request and its reads.
	snap, err := tel.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := snap.Total(telemetry.MetricHTTPRequests, "function=serve", "route=recording", "http.response.status_code=200"); n != 1 {
		t.Errorf("%s{serve,recording,200} = %v, want 1; snapshot %v", telemetry.MetricHTTPRequests, n, snap)
	}
	if n := snap.Count(telemetry.MetricServeReads); n != 1 {
		t.Errorf("%s observations = %d, want 1", telemetry.MetricServeReads, n)
	}
	if n := snap.Total(telemetry.MetricKMSCalls, "op=unwrap", "outcome=ok"); n < 1 {
		t.Errorf("%s{unwrap,ok} = %v, want at least 1", telemetry.MetricKMSCalls, n)
	}
}
