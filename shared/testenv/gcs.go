package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"
)

// GCS is fake-gcs-server served over real HTTP on 127.0.0.1, with request
// counters and fault injection in front of it.
type GCS struct {
	fake   *fakestorage.Server
	http   *http.Server
	served chan struct{} // closed when Serve returns
	host   string        // 127.0.0.1:port

	uploads, reads, rangedReads, deletes, lists, other atomic.Int64
	readBytes                                          atomic.Int64

	mu          sync.Mutex
	failUploads int  // the next n upload requests answer 503
	failAll     bool // every upload request answers 503
	latency     time.Duration
}

// GCSCounts counts the requests a GCS server has answered, by kind.
type GCSCounts struct {
	// Uploads are upload requests: simple, multipart, and each request of a
	// resumable upload.
	Uploads int64
	// Reads are object media reads (GET or HEAD), ranged or not.
	Reads int64
	// RangedReads are the Reads that carried a Range header.
	RangedReads int64
	// ReadBytes is the response bytes of the Reads: what a reader paid to
	// transfer.
	ReadBytes int64
	// Deletes are object deletions.
	Deletes int64
	// Lists are object and bucket listings.
	Lists int64
	// Other is everything else: metadata reads, bucket creation, ...
	Other int64
}

// StartGCS starts a fake GCS server holding buckets (created if missing).
// With dir == "" objects live in memory; otherwise they are files under dir
// and survive a restart.
//
// Point a client at it with Client, or with STORAGE_EMULATOR_HOST=Host() in
// a child process's environment.
func StartGCS(dir string, buckets ...string) (*GCS, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("gcs listen: %w", err)
	}
	host := l.Addr().String()
	// We serve the fake's handler ourselves (NoListener) to put the counting
	// middleware in front of it. PublicHost must be our host:port: the
	// storage client reads objects with XML-API style GET /bucket/object on
	// the endpoint's host, which the fake routes by comparing the Host
	// header with PublicHost.
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		StorageRoot: dir,
		Scheme:      "http",
		Host:        "127.0.0.1",
		NoListener:  true,
		ExternalURL: "http://" + host,
		PublicHost:  host,
	})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("start fake gcs: %w", err)
	}
	for _, b := range buckets {
		if err := createBucket(fake, b); err != nil {
			l.Close()
			fake.Stop()
			return nil, err
		}
	}
	g := &GCS{fake: fake, host: host, served: make(chan struct{})}
	g.http = &http.Server{Handler: g.middleware(fake.HTTPHandler()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(g.served)
		if err := g.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("fake gcs serve", "err", err)
		}
	}()
	slog.Debug("fake gcs started", "url", g.URL(), "dir", dir)
	return g, nil
}

// createBucket creates bucket unless it exists (the filesystem backend keeps
// buckets across restarts). The fake panics on backend errors.
func createBucket(fake *fakestorage.Server, name string) (err error) {
	if _, err := fake.Backend().GetBucket(name); err == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("create bucket %s: %v", name, r)
		}
	}()
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	return nil
}

// NewGCS starts a fake GCS server with bucket for the duration of t.
func NewGCS(t testing.TB, bucket string) *GCS {
	t.Helper()
	g, err := StartGCS("", bucket)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(g.Stop)
	return g
}

// URL returns the server's base URL, http://127.0.0.1:port.
func (g *GCS) URL() string { return "http://" + g.host }

// Host returns host:port, the value for STORAGE_EMULATOR_HOST.
func (g *GCS) Host() string { return g.host }

// Server returns the fake itself, for seeding or inspecting objects directly.
func (g *GCS) Server() *fakestorage.Server { return g.fake }

// Client returns a real storage client that talks to the server over HTTP
// without authentication. The caller closes it.
func (g *GCS) Client(ctx context.Context) (*storage.Client, error) {
	c, err := storage.NewClient(ctx,
		option.WithEndpoint(g.URL()+"/storage/v1/"),
		option.WithoutAuthentication(),
	)
	if err != nil {
		return nil, fmt.Errorf("gcs client: %w", err)
	}
	return c, nil
}

// Stop closes the server and its connections.
func (g *GCS) Stop() {
	g.http.Close()
	<-g.served
	g.fake.Stop()
}

// Counts returns the requests answered since the start or the last
// ResetCounts.
func (g *GCS) Counts() GCSCounts {
	return GCSCounts{
		Uploads:     g.uploads.Load(),
		Reads:       g.reads.Load(),
		RangedReads: g.rangedReads.Load(),
		ReadBytes:   g.readBytes.Load(),
		Deletes:     g.deletes.Load(),
		Lists:       g.lists.Load(),
		Other:       g.other.Load(),
	}
}

// ResetCounts sets all counters to zero.
func (g *GCS) ResetCounts() {
	for _, c := range []*atomic.Int64{&g.uploads, &g.reads, &g.rangedReads, &g.readBytes, &g.deletes, &g.lists, &g.other} {
		c.Store(0)
	}
}

// FailUploads makes the next n upload requests answer 503. The storage
// client retries idempotent uploads (those with a precondition such as
// DoesNotExist), so a small n models a transient failure it rides out.
func (g *GCS) FailUploads(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failUploads = n
}

// FailAllUploads makes every upload request answer 503 until called with
// false: an outage the client's retries cannot hide.
func (g *GCS) FailAllUploads(fail bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failAll = fail
}

// SetLatency delays every request by d before it is handled.
func (g *GCS) SetLatency(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.latency = d
}

// gcsKind is what a request does, for counting.
type gcsKind int

const (
	kindOther gcsKind = iota
	kindUpload
	kindRead
	kindDelete
	kindList
)

// middleware counts each request, then applies latency and injected upload
// failures before handing it to the fake.
func (g *GCS) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := classify(r)
		switch kind {
		case kindUpload:
			g.uploads.Add(1)
		case kindRead:
			g.reads.Add(1)
			if r.Header.Get("Range") != "" {
				g.rangedReads.Add(1)
			}
			w = &countingWriter{ResponseWriter: w, n: &g.readBytes}
		case kindDelete:
			g.deletes.Add(1)
		case kindList:
			g.lists.Add(1)
		default:
			g.other.Add(1)
		}

		g.mu.Lock()
		latency := g.latency
		fail := kind == kindUpload && (g.failAll || g.failUploads > 0)
		if fail && !g.failAll {
			g.failUploads--
		}
		g.mu.Unlock()

		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		if fail {
			w.Header().Set("Content-Type", "application/json; charset=UTF-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":503,"message":"testenv: injected upload failure","errors":[{"reason":"backendError","message":"testenv: injected upload failure"}]}}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// countingWriter adds the body bytes written through it to n.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	k, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(k))
	return k, err
}

// classify sorts a request by the JSON and XML API routes the storage client
// uses.
func classify(r *http.Request) gcsKind {
	p := r.URL.Path
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case strings.HasPrefix(p, "/upload/"):
		if r.Method == http.MethodPost || r.Method == http.MethodPut {
			return kindUpload
		}
		return kindOther
	case strings.HasPrefix(p, "/download/"):
		if get {
			return kindRead
		}
		return kindOther
	case strings.HasPrefix(p, "/storage/v1/"):
		// /storage/v1/b[/{bucket}[/o[/{object}]]]
		parts := strings.SplitN(strings.TrimPrefix(p, "/storage/v1/"), "/", 4)
		objects := len(parts) >= 3 && parts[2] == "o"
		object := objects && len(parts) == 4 && parts[3] != ""
		switch {
		case get && (len(parts) == 1 || objects && !object):
			return kindList
		case get && object && r.URL.Query().Get("alt") == "media":
			return kindRead
		case r.Method == http.MethodDelete && object:
			return kindDelete
		}
		return kindOther
	case strings.HasPrefix(p, "/_internal/"), strings.HasPrefix(p, "/batch/"):
		return kindOther
	case get && strings.Count(strings.Trim(p, "/"), "/") >= 1:
		// XML API: GET /bucket/object.
		return kindRead
	case get && strings.Trim(p, "/") != "":
		// XML API: GET /bucket lists objects.
		return kindList
	}
	return kindOther
}

// Object returns the content of an object, read from the server's side (the
// production blob.Store has no whole-object read: Serve only reads ranges).
func (g *GCS) Object(bucket, name string) ([]byte, error) {
	o, err := g.fake.GetObject(bucket, name)
	if err != nil {
		return nil, fmt.Errorf("object %s/%s: %w", bucket, name, err)
	}
	return o.Content, nil
}
