package serve

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

// BenchmarkServeStreaming serves a 500-segment replay (packed by the real
// packer into 4 blobs, interleaved with another replay) with latency added
// to every storage read, and reports time to first byte and total time per
// request, against a naive reader measured in the same run: one read per
// segment, sequential, then decrypt, as a first implementation would.
//
//	go test ./functions/serve/ -run '^$' -bench BenchmarkServeStreaming -benchtime 5x
func BenchmarkServeStreaming(b *testing.B) {
	const (
		segments = 500
		latency  = 10 * time.Millisecond // per request; GCS first-byte latency is tens of ms
	)
	e := newEnv(b, defaults())
	rng := rand.New(rand.NewPCG(21, 22))
	id := uuid.New()
	segs := append(makeSegments(rng, 1, id, "", segments, 6000), makeSegments(rng, 1, uuid.New(), "", segments, 6000)...)
	pack(b, e.d, 250, segs)
	rows := segmentRows(b, e.d, 1, id)
	b.Logf("%d segments in %d blobs; read latency %v", len(rows), distinctBlobs(rows), latency)
	tok := token(b, 1)

	variants := []struct {
		name string
		url  func(blob.Store) string
	}{
		{"coalesced", func(s blob.Store) string { return e.server(defaults(), nil, s, nil) }},
		// The same engine without coalescing: parallel reads alone.
		{"parallel-uncoalesced", func(s blob.Store) string { return e.server(Config{CoalesceGapBytes: 0}, nil, s, nil) }},
		{"naive", func(s blob.Store) string {
			mux := http.NewServeMux()
			mux.Handle("GET /v1/projects/{project}/replays/{replay}/recording", &naiveReader{db: e.d.DB, blobs: s, keks: e.d.KEKCache()})
			return serveHTTP(b, mux)
		}},
	}
	want := len(events(b, segs[:segments]))
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			st := testenv.NewCountingStore(e.d.Blobs, latency)
			url := recordingURL(v.url(st), 1, id, "")
			var ttfb, total time.Duration
			var n int
			for b.Loop() {
				first, all, body := fetchTimed(b, url, tok)
				ttfb += first
				total += all
				n++
				if n == 1 {
					if got := len(compactEvents(b, body)); got != want {
						b.Fatalf("%d events, want %d", got, want)
					}
				}
			}
			b.ReportMetric(float64(ttfb.Microseconds())/1000/float64(n), "ttfb-ms")
			b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "total-ms")
			b.ReportMetric(float64(st.Counts().ClassB)/float64(n), "reads/op")
		})
	}
}

// fetchTimed GETs url and returns the time to the first body byte, the
// total time, and the body.
func fetchTimed(b *testing.B, url, tok string) (time.Duration, time.Duration, []byte) {
	start := time.Now()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	if _, err := r.Peek(1); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start)
	body, err := io.ReadAll(r)
	if err != nil {
		b.Fatal(err)
	}
	return first, time.Since(start), body
}

// naiveReader is the baseline: it reads each segment with its own ranged
// read, one after another, decrypts and decompresses it, and writes it out.
// It streams too, so its time to first byte is one read.
type naiveReader struct {
	db    *store.DB
	blobs blob.Store
	keks  *crypt.KEKCache
}

func (n *naiveReader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	project, err := strconv.ParseInt(r.PathValue("project"), 10, 64)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	replay, err := uuid.Parse(r.PathValue("replay"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, rows, err := n.db.ReplaySegments(r.Context(), project, replay, segment.DefaultType, 0, 1<<31-1)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	out := &framer{}
	w.Header().Set("Content-Type", out.contentType())
	rc := http.NewResponseController(w)
	for i, row := range rows {
		ct, err := n.blobs.ReadRange(ctx, row.BlobPath, row.ByteStart, row.ByteStop-row.ByteStart)
		var doc []byte
		if err == nil {
			var kek *crypt.KEK
			if kek, err = n.keks.Get(ctx, row.KEKID); err == nil {
				var pt []byte
				if pt, err = crypt.Open(kek, row.ID.AAD(), ct, row.WrappedDEK); err == nil {
					doc, err = segment.Decode(row.Encoding, pt, 0)
				}
			}
		}
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if i == 0 {
			_ = out.begin(w)
		}
		_ = out.segment(w, doc)
		_ = rc.Flush()
	}
	if len(rows) == 0 {
		_ = out.begin(w)
	}
	_ = out.end(w)
}
