package blob

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// GCS is a Store on one Cloud Storage bucket.
type GCS struct {
	bucket  *storage.BucketHandle
	timeout time.Duration
}

// NewGCSClient returns a storage client. Locally, STORAGE_EMULATOR_HOST
// (read by the client library itself) points it at fake-gcs-server.
func NewGCSClient(ctx context.Context, opts ...option.ClientOption) (*storage.Client, error) {
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("storage client: %w", err)
	}
	return c, nil
}

// NewGCS returns a Store on bucket; timeout bounds each request.
func NewGCS(client *storage.Client, bucket string, timeout time.Duration) *GCS {
	return &GCS{bucket: client.Bucket(bucket), timeout: timeout}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Create writes parts in a single request with a does-not-exist
// precondition and a CRC32C the server checks, so a retried or duplicated
// flush can never overwrite a blob and corruption in transit is refused.
// With ChunkSize 0 the writer streams the parts to the request as they are
// written and buffers none of them; Close returns when the upload is done.
func (g *GCS) Create(ctx context.Context, name string, parts ...[]byte) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	w := g.bucket.Object(name).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ChunkSize = 0 // one multipart upload: one class A operation
	w.ContentType = "application/octet-stream"
	var sum uint32
	for _, p := range parts {
		sum = crc32.Update(sum, castagnoli, p)
	}
	w.CRC32C = sum
	w.SendCRC32C = true
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			_ = w.Close()
			return fmt.Errorf("write %s: %w", name, gcsError(err))
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, gcsError(err))
	}
	return nil
}

// ReadRange reads length bytes at offset with one ranged GET.
func (g *GCS) ReadRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	r, err := g.OpenRange(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	buf := make([]byte, length)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// OpenRange streams length bytes of name at offset; the timeout bounds the
// whole read, until Close.
func (g *GCS) OpenRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	r, err := g.bucket.Object(name).NewRangeReader(ctx, offset, length)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("read %s [%d,+%d): %w", name, offset, length, gcsError(err))
	}
	return &rangeReader{r: r, cancel: cancel, name: name, offset: offset, length: length, left: length}, nil
}

// rangeReader is an object range being read; its errors are mapped as
// ReadRange's are, and a stream that ends short fails.
type rangeReader struct {
	r                    *storage.Reader
	cancel               context.CancelFunc
	name                 string
	offset, length, left int64
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read %s [%d,+%d): %w", r.name, r.offset, r.length, gcsError(err))
	}
	return n, err
}

func (r *rangeReader) Close() error {
	err := r.r.Close()
	r.cancel()
	return err
}

// Delete removes name; a missing object is fine.
func (g *GCS) Delete(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	err := g.bucket.Object(name).Delete(ctx)
	if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("delete %s: %w", name, gcsError(err))
	}
	return nil
}

// List calls fn for every object under prefix, page by page; each page
// request has its own timeout.
func (g *GCS) List(ctx context.Context, prefix string, fn func(Object) error) error {
	it := g.bucket.Objects(ctx, &storage.Query{Prefix: prefix, Projection: storage.ProjectionNoACL})
	for {
		attrs, err := nextWithTimeout(ctx, it, g.timeout)
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %q: %w", prefix, gcsError(err))
		}
		if err := fn(Object{Name: attrs.Name, Size: attrs.Size, Created: attrs.Created}); err != nil {
			return err
		}
	}
}

func nextWithTimeout(ctx context.Context, it *storage.ObjectIterator, timeout time.Duration) (*storage.ObjectAttrs, error) {
	type result struct {
		attrs *storage.ObjectAttrs
		err   error
	}
	// The iterator takes its context at creation; bound each page fetch
	// here so a hung list cannot block the sweep forever.
	done := make(chan result, 1)
	go func() {
		a, err := it.Next()
		done <- result{a, err}
	}()
	select {
	case r := <-done:
		return r.attrs, r.err
	case <-time.After(timeout):
		return nil, fmt.Errorf("%w: list page timed out after %s", ErrUnavailable, timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func gcsError(err error) error {
	if errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		switch {
		case gerr.Code == http.StatusPreconditionFailed:
			return fmt.Errorf("%w: %w", ErrExists, err)
		case gerr.Code == http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case gerr.Code == http.StatusTooManyRequests || gerr.Code >= 500:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
