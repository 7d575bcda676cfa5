package testenv

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"github.com/replayvault/replayvault/shared/blob"
)

// Counts are the requests a Store served, by GCS billing class: class A
// (writes, lists) and class B (reads); deletes are free.
type Counts struct {
	ClassA, ClassB, Deletes int64
	BytesWritten, BytesRead int64
}

// CountingStore wraps a blob.Store, counting every request by GCS billing
// class and optionally sleeping before each one to model a cloud round trip.
// Tests and the benchmark measure reads and writes through it.
type CountingStore struct {
	blob.Store
	// Latency is added before every request.
	Latency time.Duration

	classA, classB, deletes atomic.Int64
	written, read           atomic.Int64
}

// NewCountingStore wraps s with latency added to each request.
func NewCountingStore(s blob.Store, latency time.Duration) *CountingStore {
	return &CountingStore{Store: s, Latency: latency}
}

// Counts returns the counters so far.
func (i *CountingStore) Counts() Counts {
	return Counts{
		ClassA: i.classA.Load(), ClassB: i.classB.Load(), Deletes: i.deletes.Load(),
		BytesWritten: i.written.Load(), BytesRead: i.read.Load(),
	}
}

func (i *CountingStore) wait(ctx context.Context) error {
	if i.Latency <= 0 {
		return nil
	}
	t := time.NewTimer(i.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Create counts a class A operation.
func (i *CountingStore) Create(ctx context.Context, name string, parts ...[]byte) error {
	i.classA.Add(1)
	if err := i.wait(ctx); err != nil {
		return err
	}
	err := i.Store.Create(ctx, name, parts...)
	if err == nil {
		i.written.Add(int64(blob.Size(parts)))
	}
	return err
}

// ReadRange counts a class B operation.
func (i *CountingStore) ReadRange(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	i.classB.Add(1)
	if err := i.wait(ctx); err != nil {
		return nil, err
	}
	b, err := i.Store.ReadRange(ctx, name, offset, length)
	i.read.Add(int64(len(b)))
	return b, err
}

// OpenRange counts a class B operation; the bytes count as they are read.
func (i *CountingStore) OpenRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	i.classB.Add(1)
	if err := i.wait(ctx); err != nil {
		return nil, err
	}
	r, err := i.Store.OpenRange(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	return countedReader{r, &i.read}, nil
}

// countedReader adds what is read to n.
type countedReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countedReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Delete counts a delete.
func (i *CountingStore) Delete(ctx context.Context, name string) error {
	i.deletes.Add(1)
	if err := i.wait(ctx); err != nil {
		return err
	}
	return i.Store.Delete(ctx, name)
}

// List counts a class A operation per call (one page is typical here).
func (i *CountingStore) List(ctx context.Context, prefix string, fn func(blob.Object) error) error {
	i.classA.Add(1)
	if err := i.wait(ctx); err != nil {
		return err
	}
	return i.Store.List(ctx, prefix, fn)
}
