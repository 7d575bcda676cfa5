package crypt

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"
)

// KEK is an unwrapped key-encryption key.
type KEK struct {
	ID        uuid.UUID
	KMSKey    string    // the KMS key that wrapped it
	Wrapped   []byte    // as stored in the keks table
	CreatedAt time.Time // when this instance made it
	aead      cipher.AEAD
}

// NewKEK generates a KEK and wraps it with w (one KMS call), with the KEK id
// as AAD so a wrapped KEK cannot be swapped for another's.
func NewKEK(ctx context.Context, w Wrapper) (*KEK, error) {
	id := uuid.New()
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate kek: %w", err)
	}
	defer clear(key)
	wrapped, err := w.Wrap(ctx, key, id[:])
	if err != nil {
		return nil, fmt.Errorf("wrap kek %s: %w", id, err)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &KEK{ID: id, KMSKey: w.KeyName(), Wrapped: wrapped, CreatedAt: time.Now(), aead: aead}, nil
}

// UnwrapKEK turns a stored wrapped KEK back into a usable key (one KMS call).
func UnwrapKEK(ctx context.Context, w Wrapper, id uuid.UUID, wrapped []byte) (*KEK, error) {
	key, err := w.Unwrap(ctx, wrapped, id[:])
	if err != nil {
		return nil, fmt.Errorf("unwrap kek %s: %w", id, err)
	}
	defer clear(key)
	if len(key) != keySize {
		return nil, fmt.Errorf("unwrap kek %s: %w: key is %d bytes", id, ErrIntegrity, len(key))
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &KEK{ID: id, KMSKey: w.KeyName(), Wrapped: wrapped, aead: aead}, nil
}

// Keyring hands out the current KEK to the packer, making and persisting a
// new one every rotation interval. KMS is called once per KEK, never per
// segment.
type Keyring struct {
	wrapper Wrapper
	persist func(context.Context, *KEK) error
	rotate  time.Duration
	now     func() time.Time

	mu      sync.Mutex
	current *KEK
}

// NewKeyring returns a Keyring that wraps new KEKs with w and stores each
// with persist before first use (so no segment is ever sealed under a KEK
// the database does not hold).
func NewKeyring(w Wrapper, persist func(context.Context, *KEK) error, rotate time.Duration) *Keyring {
	return &Keyring{wrapper: w, persist: persist, rotate: rotate, now: time.Now}
}

// Current returns the KEK to seal with now. When the current KEK is due for
// rotation but a new one cannot be made, it keeps the old one (still valid)
// and tries again on the next call; only when there is no KEK at all does it
// return the error.
func (k *Keyring) Current(ctx context.Context) (*KEK, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current != nil && k.now().Sub(k.current.CreatedAt) < k.rotate {
		return k.current, nil
	}
	kek, err := NewKEK(ctx, k.wrapper)
	if err == nil {
		err = k.persist(ctx, kek)
	}
	if err != nil {
		if k.current != nil {
			slog.WarnContext(ctx, "kek rotation failed; sealing with the previous kek", "kek_id", k.current.ID, "error", err)
			return k.current, nil
		}
		return nil, fmt.Errorf("new kek: %w", err)
	}
	kek.CreatedAt = k.now()
	k.current = kek
	slog.InfoContext(ctx, "kek rotated", "kek_id", kek.ID, "kms_key", kek.KMSKey)
	return kek, nil
}

// KEKCache keeps unwrapped KEKs for the read path (LRU + TTL), so KMS is
// called once per KEK per instance and TTL rather than per request. DEKs are
// never cached: a shred takes effect on the next request.
//
// A miss starts one load+unwrap per KEK id; concurrent misses on the same
// id wait for it, misses on other ids do not. Each waiter gives up when its
// own context ends, without cancelling the unwrap the others wait for.
type KEKCache struct {
	wrapper Wrapper
	load    func(ctx context.Context, id uuid.UUID) (wrapped []byte, err error)
	lru     *expirable.LRU[uuid.UUID, *KEK]

	mu      sync.Mutex
	flights map[uuid.UUID]*flight
}

// flight is one load+unwrap in progress; kek and err are set before done
// is closed.
type flight struct {
	done chan struct{}
	kek  *KEK
	err  error
}

// flightTimeout bounds one load+unwrap, which outlives the caller that
// started it (the database and KMS calls have their own, shorter bounds).
const flightTimeout = time.Minute

// NewKEKCache returns a cache of at most size KEKs, each kept for ttl; load
// reads a wrapped KEK from the database.
func NewKEKCache(w Wrapper, load func(context.Context, uuid.UUID) ([]byte, error), size int, ttl time.Duration) *KEKCache {
	return &KEKCache{
		wrapper: w, load: load,
		lru:     expirable.NewLRU[uuid.UUID, *KEK](size, nil, ttl),
		flights: map[uuid.UUID]*flight{},
	}
}

// Get returns the unwrapped KEK id, or ctx's error if ctx ends first.
func (c *KEKCache) Get(ctx context.Context, id uuid.UUID) (*KEK, error) {
	if k, ok := c.lru.Get(id); ok {
		return k, nil
	}
	c.mu.Lock()
	if k, ok := c.lru.Get(id); ok {
		c.mu.Unlock()
		return k, nil
	}
	f := c.flights[id]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.flights[id] = f
		// The unwrap keeps the caller's values (trace, logging) but not
		// its cancellation: other requests may be waiting for it.
		go c.fly(context.WithoutCancel(ctx), id, f)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.kek, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("kek %s: %w", id, ctx.Err())
	}
}

// fly loads and unwraps id, caches it on success, and wakes the waiters. A
// failure is not cached: the next miss tries again.
func (c *KEKCache) fly(ctx context.Context, id uuid.UUID, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, flightTimeout)
	defer cancel()
	f.kek, f.err = c.unwrap(ctx, id)
	c.mu.Lock()
	if f.err == nil {
		c.lru.Add(id, f.kek)
	}
	delete(c.flights, id)
	c.mu.Unlock()
	close(f.done)
}

func (c *KEKCache) unwrap(ctx context.Context, id uuid.UUID) (*KEK, error) {
	wrapped, err := c.load(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load kek %s: %w", id, err)
	}
	return UnwrapKEK(ctx, c.wrapper, id, wrapped)
}
