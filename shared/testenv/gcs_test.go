package testenv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
)

const testBucket = "testenv-bucket"

func TestGCS(t *testing.T) {
	ctx := t.Context()
	g := NewGCS(t, testBucket)
	client := gcsClient(t, g)
	obj := client.Bucket(testBucket).Object("replays/r1/blob-0001")
	content := []byte("0123456789abcdefghijklmnopqrstuvwxyz")

	t.Run("create once", func(t *testing.T) {
		if err := upload(ctx, obj.If(storage.Conditions{DoesNotExist: true}), content); err != nil {
			t.Fatalf("first upload: %v", err)
		}
		err := upload(ctx, obj.If(storage.Conditions{DoesNotExist: true}), []byte("other"))
		if code := httpCode(err); code != http.StatusPreconditionFailed {
			t.Fatalf("second upload with DoesNotExist: err = %v, want HTTP 412", err)
		}
		if got := g.Counts().Uploads; got != 2 {
			t.Errorf("Uploads = %d, want 2", got)
		}
	})

	t.Run("ranged reads", func(t *testing.T) {
		g.ResetCounts()
		tests := []struct {
			name           string
			offset, length int64
			want           []byte
		}{
			{"whole", 0, -1, content},
			{"middle", 5, 10, content[5:15]},
			{"to end", 30, -1, content[30:]},
			{"suffix", -4, -1, content[len(content)-4:]},
			{"past end", 30, 100, content[30:]},
		}
		var body int64
		for _, tt := range tests {
			body += int64(len(tt.want))
			r, err := obj.NewRangeReader(ctx, tt.offset, tt.length)
			if err != nil {
				t.Fatalf("%s: NewRangeReader(%d, %d): %v", tt.name, tt.offset, tt.length, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatalf("%s: read: %v", tt.name, err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("%s: NewRangeReader(%d, %d) = %q, want %q", tt.name, tt.offset, tt.length, got, tt.want)
			}
		}
		c := g.Counts()
		if c.Reads != int64(len(tests)) || c.RangedReads != int64(len(tests)-1) {
			t.Errorf("Reads, RangedReads = %d, %d; want %d, %d", c.Reads, c.RangedReads, len(tests), len(tests)-1)
		}
		if c.ReadBytes != body {
			t.Errorf("ReadBytes = %d, want %d (the bytes the reads returned)", c.ReadBytes, body)
		}
		if c.Uploads != 0 {
			t.Errorf("Uploads = %d after ResetCounts and reads only", c.Uploads)
		}
	})

	t.Run("list and delete", func(t *testing.T) {
		g.ResetCounts()
		it := client.Bucket(testBucket).Objects(ctx, nil)
		var names []string
		for {
			attrs, err := it.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, attrs.Name)
		}
		if len(names) != 1 || names[0] != obj.ObjectName() {
			t.Errorf("listed %q, want [%q]", names, obj.ObjectName())
		}
		if err := obj.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := obj.Attrs(ctx); !errors.Is(err, storage.ErrObjectNotExist) {
			t.Errorf("Attrs after Delete: %v, want ErrObjectNotExist", err)
		}
		want := GCSCounts{Lists: 1, Deletes: 1, Other: 1}
		if got := g.Counts(); got != want {
			t.Errorf("Counts = %+v, want %+v", got, want)
		}
	})
}

func TestGCSFaults(t *testing.T) {
	ctx := t.Context()
	g := NewGCS(t, testBucket)
	client := gcsClient(t, g)
	// Fast retries so that the tests below take milliseconds.
	fast := storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond})
	obj := func(name string, opts ...storage.RetryOption) *storage.ObjectHandle {
		return client.Bucket(testBucket).Object(name).If(storage.Conditions{DoesNotExist: true}).Retryer(append(opts, fast)...)
	}

	t.Run("transient", func(t *testing.T) {
		g.ResetCounts()
		g.FailUploads(2)
		if err := upload(ctx, obj("transient"), []byte("x")); err != nil {
			t.Fatalf("upload after 2 injected failures: %v", err)
		}
		if got := g.Counts().Uploads; got != 3 {
			t.Errorf("Uploads = %d, want 3 (2 failed, 1 retried)", got)
		}
	})

	t.Run("outage", func(t *testing.T) {
		g.ResetCounts()
		g.FailAllUploads(true)
		// Uploads ignore WithMaxAttempts, and a context deadline masks the
		// last error; an error func is what bounds the attempts.
		attempts := 0
		giveUp := storage.WithErrorFunc(func(err error) bool {
			attempts++
			return attempts < 3 && storage.ShouldRetry(err)
		})
		err := upload(ctx, obj("outage", giveUp), []byte("x"))
		if code := httpCode(err); code != http.StatusServiceUnavailable {
			t.Fatalf("upload during outage: err = %v, want HTTP 503", err)
		}
		if got := g.Counts().Uploads; got != 3 {
			t.Errorf("Uploads = %d, want 3 attempts", got)
		}
		g.FailAllUploads(false)
		if err := upload(ctx, obj("outage"), []byte("x")); err != nil {
			t.Fatalf("upload after the outage: %v", err)
		}
	})

	t.Run("latency", func(t *testing.T) {
		const d = 200 * time.Millisecond
		g.SetLatency(d)
		defer g.SetLatency(0)
		start := time.Now()
		if _, err := client.Bucket(testBucket).Object("transient").Attrs(ctx); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < d {
			t.Errorf("Attrs took %s with latency %s", took, d)
		}
	})
}

// TestGCSClients covers the two ways production code reaches the server
// (STORAGE_EMULATOR_HOST in the dev stack, an endpoint option in tests) and
// both upload protocols: multipart for small objects, resumable for objects
// larger than the writer's chunk size.
func TestGCSClients(t *testing.T) {
	g := NewGCS(t, testBucket)
	big := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB
	clients := []struct {
		name string
		new  func(t *testing.T) *storage.Client
	}{
		{"endpoint option", func(t *testing.T) *storage.Client { return gcsClient(t, g) }},
		{"STORAGE_EMULATOR_HOST", func(t *testing.T) *storage.Client {
			t.Setenv("STORAGE_EMULATOR_HOST", g.Host())
			c, err := storage.NewClient(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			ctx := t.Context()
			client := cl.new(t)
			for _, tt := range []struct {
				name      string
				chunkSize int
				data      []byte
				uploads   int64
			}{
				{"multipart", 0, []byte("small"), 1},
				{"resumable", 256 << 10, big, 4}, // start + 3 chunks
			} {
				g.ResetCounts()
				obj := client.Bucket(testBucket).Object(cl.name + "/" + tt.name).If(storage.Conditions{DoesNotExist: true})
				w := obj.NewWriter(ctx)
				w.ChunkSize = tt.chunkSize
				if _, err := w.Write(tt.data); err != nil {
					t.Fatalf("%s: write: %v", tt.name, err)
				}
				if err := w.Close(); err != nil {
					t.Fatalf("%s: close: %v", tt.name, err)
				}
				if got := g.Counts().Uploads; got != tt.uploads {
					t.Errorf("%s: Uploads = %d, want %d", tt.name, got, tt.uploads)
				}
				off := int64(len(tt.data) / 2)
				r, err := obj.NewRangeReader(ctx, off, 3)
				if err != nil {
					t.Fatalf("%s: NewRangeReader: %v", tt.name, err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, tt.data[off:off+3]) {
					t.Errorf("%s: read %q, %v; want %q", tt.name, got, err, tt.data[off:off+3])
				}
			}
		})
	}
}

// TestStartGCSDir is the dev stack's --data-dir: objects survive a restart.
func TestStartGCSDir(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	g, err := StartGCS(dir, testBucket)
	if err != nil {
		t.Fatal(err)
	}
	client := gcsClient(t, g)
	if err := upload(ctx, client.Bucket(testBucket).Object("kept"), []byte("data")); err != nil {
		t.Fatal(err)
	}
	g.Stop()

	g, err = StartGCS(dir, testBucket)
	if err != nil {
		t.Fatalf("restart on the same dir: %v", err)
	}
	defer g.Stop()
	r, err := gcsClient(t, g).Bucket(testBucket).Object("kept").NewReader(ctx)
	if err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	defer r.Close()
	if got, _ := io.ReadAll(r); string(got) != "data" {
		t.Errorf("read after restart = %q, want %q", got, "data")
	}
	if entries, _ := os.ReadDir(dir); len(entries) == 0 {
		t.Error("nothing written under dir")
	}
}

func gcsClient(t *testing.T, g *GCS) *storage.Client {
	t.Helper()
	c, err := g.Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func upload(ctx context.Context, obj *storage.ObjectHandle, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w := obj.NewWriter(ctx)
	if _, err := w.Write(data); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func httpCode(err error) int {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gerr.Code
	}
	return 0
}
