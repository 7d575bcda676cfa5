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

// Keyring hands out the current KEK to the packer and rotates it in the
// background. KMS is called once per KEK, never per segment, and never on
// the caller's path while a KEK is held: a due rotation starts one attempt
// in the background and the caller goes on sealing with the current KEK,
// which stays valid until a new one is stored. A failed attempt moves the
// next attempt time (exponential backoff), so a KMS outage costs one call
// per backoff step, not one per segment.
type Keyring struct {
	wrapper Wrapper
	persist func(context.Context, *KEK) error
	rotate  time.Duration
	now     func() time.Time

	mu      sync.Mutex
	current *KEK
	next    time.Time     // when the next attempt may start
	backoff time.Duration // the delay added by the last failure
	lastErr error         // of the last failed attempt
	running chan struct{} // non-nil while an attempt runs; closed at its end
}

// Rotation backoff bounds and the bound on one attempt (KMS and database
// calls have their own, shorter timeouts).
const (
	minRotateBackoff = time.Second
	maxRotateBackoff = 5 * time.Minute
	rotateTimeout    = time.Minute
)

// NewKeyring returns a Keyring that wraps new KEKs with w and stores each
// with persist before first use (so no segment is ever sealed under a KEK
// the database does not hold).
func NewKeyring(w Wrapper, persist func(context.Context, *KEK) error, rotate time.Duration) *Keyring {
	return &Keyring{wrapper: w, persist: persist, rotate: rotate, now: time.Now}
}

// Current returns the KEK to seal with now. While a KEK is held it never
// waits on KMS or the database: a due rotation runs in the background.
// Only before the first KEK is stored does it wait, for the attempt in
// flight or until ctx ends; it fails at once, with the last attempt's
// error, while no attempt is due.
func (k *Keyring) Current(ctx context.Context) (*KEK, error) {
	k.mu.Lock()
	if k.running == nil && !k.now().Before(k.next) {
		k.startLocked(ctx)
	}
	cur, running, lastErr := k.current, k.running, k.lastErr
	k.mu.Unlock()
	if cur != nil {
		return cur, nil
	}
	if running == nil {
		return nil, fmt.Errorf("no kek yet: %w", lastErr)
	}
	select {
	case <-running:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for kek: %w", ctx.Err())
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current == nil {
		return nil, fmt.Errorf("new kek: %w", k.lastErr)
	}
	return k.current, nil
}

// startLocked starts one rotation attempt. k.mu must be held.
func (k *Keyring) startLocked(ctx context.Context) {
	done := make(chan struct{})
	k.running = done
	// The attempt keeps the caller's values (logging) but not its
	// cancellation: it outlives the request that noticed it was due.
	go k.attempt(context.WithoutCancel(ctx), done)
}

func (k *Keyring) attempt(ctx context.Context, done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithTimeout(ctx, rotateTimeout)
	defer cancel()
	kek, err := NewKEK(ctx, k.wrapper)
	if err == nil {
		err = k.persist(ctx, kek)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.running = nil
	now := k.now()
	if err != nil {
		k.backoff = min(max(2*k.backoff, minRotateBackoff), maxRotateBackoff)
		k.next = now.Add(k.backoff)
		k.lastErr = err
		if k.current != nil {
			slog.WarnContext(ctx, "kek rotation failed; sealing with the previous kek", "kek_id", k.current.ID, "retry_in", k.backoff, "error", err)
		} else {
			slog.ErrorContext(ctx, "no kek: rotation failed", "retry_in", k.backoff, "error", err)
		}
		return
	}
	kek.CreatedAt = now
	k.current, k.next, k.backoff, k.lastErr = kek, now.Add(k.rotate), 0, nil
	slog.InfoContext(ctx, "kek rotated", "kek_id", kek.ID, "kms_key", kek.KMSKey)
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
