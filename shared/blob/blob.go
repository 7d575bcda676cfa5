// Package blob stores packed segment objects. The GCS implementation is the
// production one (tests run it against fake-gcs-server; testenv.CountingStore
// wraps any Store to count requests and inject latency).
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/replayvault/replayvault/shared/derrors"
)

var (
	// ErrNotFound means the object does not exist.
	ErrNotFound = fmt.Errorf("object not found: %w", derrors.StorageUnavailable)
	// ErrExists means a create-if-absent write found the object there.
	ErrExists = errors.New("object already exists")
	// ErrUnavailable marks a storage failure worth retrying later.
	ErrUnavailable = fmt.Errorf("blob %w", derrors.StorageUnavailable)
)

// Object describes a stored object.
type Object struct {
	Name    string
	Size    int64
	Created time.Time
}

// Store is a bucket of immutable objects.
type Store interface {
	// Create writes the concatenation of parts as a new object; ErrExists
	// if name is taken. It keeps no reference to parts after it returns.
	// Parts spare a caller that holds the object in pieces (Pack's sealed
	// segments) a copy of the whole object.
	Create(ctx context.Context, name string, parts ...[]byte) error
	// ReadRange reads length bytes at offset.
	ReadRange(ctx context.Context, name string, offset, length int64) ([]byte, error)
	// OpenRange streams length bytes at offset, for a reader that uses
	// them as they arrive. Reading fails as ReadRange does, with
	// ErrUnavailable (io.ErrUnexpectedEOF) if the stream ends short. The
	// reader must be closed.
	OpenRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// List calls fn for each object under prefix.
	List(ctx context.Context, prefix string, fn func(Object) error) error
}

// Size is the length of the object parts make.
func Size(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}
