package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zlib"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const testSecret = "serve-test-secret-0123456789abcdef"

// defaults is Serve's configuration with the environment's defaults. (A
// zero Config turns coalescing off: COALESCE_GAP_BYTES=0.)
func defaults() Config {
	return ConfigFrom(&config.Serve{CoalesceGapBytes: 1 << 20, MaxReadBytes: 16 << 20, ReadParallelism: 8})
}

// env is a Serve over real local dependencies, behind an httptest server.
type env struct {
	t     testing.TB
	d     *testenv.Deps
	blobs *testenv.CountingStore // what the Server reads through
	srv   *Server
	url   string
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	d := testenv.NewDeps(t)
	e := &env{t: t, d: d, blobs: testenv.NewCountingStore(d.Blobs, 0)}
	e.srv = New(cfg, d.DB, e.blobs, d.KEKCache(), auth.NewVerifier(testSecret, auth.Policy{}))
	e.url = serveHTTP(t, e.srv)
	return e
}

// serveHTTP serves h over HTTP/1.1 on loopback for the test.
func serveHTTP(t testing.TB, h http.Handler) string {
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

// server returns another Server over d's database and keys with the given
// parts replaced (nil keeps d's), served over HTTP.
func (e *env) server(cfg Config, db *store.DB, blobs blob.Store, keks *crypt.KEKCache) string {
	if db == nil {
		db = e.d.DB
	}
	if blobs == nil {
		blobs = e.blobs
	}
	if keks == nil {
		keks = e.d.KEKCache()
	}
	return serveHTTP(e.t, New(cfg, db, blobs, keks, auth.NewVerifier(testSecret, auth.Policy{})))
}

func token(t testing.TB, project int64, scopes ...string) string {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []string{auth.ScopeRead}
	}
	tok, err := auth.Mint(testSecret, project, scopes, "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// seg is one segment to pack and what it must read back as.
type seg struct {
	project int64
	replay  uuid.UUID
	id      int
	typ     string
	raw     []byte // the JSON array as recorded
	payload []byte // as published: raw or compressed
}

// makeSegments generates n segments of one replay: mostly rrweb-like, in
// rotating encodings (plain, gzip, zlib), plus an empty array and a
// pretty-printed one with newlines, which both framings must handle.
func makeSegments(rng *rand.Rand, project int64, replay uuid.UUID, typ string, n, approxBytes int) []seg {
	segs := make([]seg, n)
	for i := range segs {
		raw := workload.Segment(rng, i, 1_700_000_000_000+int64(i)*60_000, approxBytes/2+rng.IntN(approxBytes))
		switch {
		case i == 3:
			raw = []byte("[ ]")
		case i == 4:
			var b bytes.Buffer
			_ = json.Indent(&b, raw, "", "  ")
			b.WriteString("\n")
			raw = b.Bytes()
		}
		payload := raw
		switch i % 3 {
		case 1:
			payload = workload.Gzip(raw)
		case 2:
			var b bytes.Buffer
			w := zlib.NewWriter(&b)
			_, _ = w.Write(raw)
			_ = w.Close()
			payload = b.Bytes()
		}
		segs[i] = seg{project: project, replay: replay, id: i, typ: typ, raw: raw, payload: payload}
	}
	return segs
}

type failReject struct{ t testing.TB }

func (r failReject) Reject(_ context.Context, attrs map[string]string, _ []byte, reason string) error {
	r.t.Errorf("segment %v rejected: %s", attrs, reason)
	return nil
}

// pack stores segs with the real packer, all at once, so that batches of
// flushSegments mix replays. Segments arrive about in the order given, a
// little shuffled, as Pub/Sub delivers them.
func pack(t testing.TB, d *testenv.Deps, flushSegments int, segs []seg) {
	t.Helper()
	packAged(t, d, flushSegments, 100*time.Millisecond, segs)
}

// packAged is pack with the given batch age; a long one makes batches
// close on their segment count alone.
func packAged(t testing.TB, d *testenv.Deps, flushSegments int, flushAge time.Duration, segs []seg) {
	t.Helper()
	packLimited(t, d, flushSegments, flushAge, segment.Limits{MaxDecompressed: 16 << 20}, segs)
}

// packLimited is packAged with the given segment limits.
func packLimited(t testing.TB, d *testenv.Deps, flushSegments int, flushAge time.Duration, lim segment.Limits, segs []seg) {
	t.Helper()
	cfg := packer.Config{
		FlushBytes:     64 << 20,
		FlushSegments:  flushSegments,
		FlushAge:       flushAge,
		MaxConcurrency: 100_000,
		MaxBufferBytes: 1 << 30,
		FlushTimeout:   60 * time.Second,
		Limits:         lim,
	}
	packWith(t, d, cfg, segs)
}

// packWith is pack with the packer configured by cfg.
func packWith(t testing.TB, d *testenv.Deps, cfg packer.Config, segs []seg) {
	t.Helper()
	p := packer.New(cfg, d.DB, d.Blobs, d.Keyring(), failReject{t})
	defer p.Close()
	order := make([]int, len(segs))
	rng := rand.New(rand.NewPCG(uint64(len(segs)), 7))
	for i := range order {
		order[i] = i
		if j := i - rng.IntN(8); j >= 0 {
			order[i], order[j] = order[j], order[i]
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(segs))
	for _, i := range order {
		s := segs[i]
		attrs := map[string]string{
			"project_id": strconv.FormatInt(s.project, 10),
			"replay_id":  s.replay.String(),
			"segment_id": strconv.Itoa(s.id),
		}
		if s.typ != "" {
			attrs["type"] = s.typ
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Ingest(context.Background(), packer.Message{ID: fmt.Sprint(s.replay, s.id, s.typ), Data: s.payload, Attributes: attrs})
			if err == nil && res != packer.Stored {
				err = fmt.Errorf("segment %s/%d: %s", s.replay, s.id, res)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// events returns the events of segs, each compacted, in order.
func events(t testing.TB, segs []seg) []string {
	t.Helper()
	var out []string
	for _, s := range segs {
		out = append(out, compactEvents(t, s.raw)...)
	}
	return out
}

func compactEvents(t testing.TB, array []byte) []string {
	t.Helper()
	var evs []json.RawMessage
	if err := json.Unmarshal(array, &evs); err != nil {
		t.Fatalf("not a JSON array: %v", err)
	}
	out := make([]string, len(evs))
	for i, ev := range evs {
		var b bytes.Buffer
		if err := json.Compact(&b, ev); err != nil {
			t.Fatal(err)
		}
		out[i] = b.String()
	}
	return out
}

// get sends a GET with a bearer token (none if tok is "").
func get(t testing.TB, url, tok string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// readAll reads a successful response's body.
func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return b
}

func recordingURL(base string, project int64, replay uuid.UUID, query string) string {
	u := fmt.Sprintf("%s/v1/projects/%d/replays/%s/recording", base, project, replay)
	if query != "" {
		u += "?" + query
	}
	return u
}

// ndjsonSegments parses an NDJSON body into the compacted events of each
// line.
func ndjsonSegments(t testing.TB, body []byte) [][]string {
	t.Helper()
	if len(body) == 0 {
		return nil
	}
	if body[len(body)-1] != '\n' {
		t.Fatalf("NDJSON body does not end with a newline")
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		out = append(out, compactEvents(t, []byte(line)))
	}
	return out
}

// segmentRows returns the stored rows of one replay, as Serve reads them.
func segmentRows(t testing.TB, d *testenv.Deps, project int64, replay uuid.UUID) []store.Segment {
	t.Helper()
	_, rows, err := d.DB.ReplaySegments(context.Background(), project, replay, segment.DefaultType, 0, 1<<31-1)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// distinctBlobs counts the blobs rows lie in.
func distinctBlobs(rows []store.Segment) int {
	m := map[string]bool{}
	for _, r := range rows {
		m[r.BlobPath] = true
	}
	return len(m)
}
