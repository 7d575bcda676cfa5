package crypt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newWrapper(t *testing.T) (*crypt.KMS, *testenv.KMS) {
	t.Helper()
	k := testenv.NewKMS(t)
	c, err := crypt.NewKMSClient(context.Background(), k.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return crypt.NewKMS(c, k.KeyName(), 5*time.Second), k
}

func TestSealOpen(t *testing.T) {
	w, _ := newWrapper(t)
	ctx := context.Background()
	kek, err := crypt.NewKEK(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	other, err := crypt.NewKEK(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("1|replay|0|recording")
	plain := []byte(`[{"type":2}]`)
	s, err := crypt.Seal(kek, aad, plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.Ciphertext, plain) {
		t.Fatal("ciphertext contains the plaintext")
	}
	if len(s.Ciphertext) != len(plain)+crypt.Overhead {
		t.Errorf("ciphertext is %d bytes, want %d", len(s.Ciphertext), len(plain)+crypt.Overhead)
	}
	got, err := crypt.Open(kek, aad, s.Ciphertext, s.WrappedDEK)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	inPlace := bytes.Clone(s.Ciphertext)
	got, err = crypt.OpenInPlace(kek, aad, inPlace, s.WrappedDEK)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenInPlace = %q, %v", got, err)
	}
	if &got[0] != &inPlace[12] { // right after the 12-byte nonce
		t.Error("OpenInPlace did not decrypt into the ciphertext's storage")
	}
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	tests := []struct {
		name    string
		kek     *crypt.KEK
		aad, ct []byte
		wrapped []byte
	}{
		{"other identity", kek, []byte("1|replay|1|recording"), s.Ciphertext, s.WrappedDEK},
		{"flipped ciphertext byte", kek, aad, flip(s.Ciphertext, 20), s.WrappedDEK},
		{"flipped nonce", kek, aad, flip(s.Ciphertext, 0), s.WrappedDEK},
		{"flipped wrapped key", kek, aad, s.Ciphertext, flip(s.WrappedDEK, 15)},
		{"other kek", other, aad, s.Ciphertext, s.WrappedDEK},
		{"truncated", kek, aad, s.Ciphertext[:10], s.WrappedDEK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := crypt.Open(tc.kek, tc.aad, tc.ct, tc.wrapped); !errors.Is(err, crypt.ErrIntegrity) {
				t.Errorf("err = %v, want ErrIntegrity", err)
			}
			if _, err := crypt.OpenInPlace(tc.kek, tc.aad, bytes.Clone(tc.ct), tc.wrapped); !errors.Is(err, crypt.ErrIntegrity) {
				t.Errorf("in place: err = %v, want ErrIntegrity", err)
			}
		})
	}
}

// TestReseal: a payload resealed under a segment's stored wrapped DEK (as
// compaction re-encodes it) opens with that same wrapped DEK, under a new
// nonce, and not once tampered with, under another identity or without
// the original wrapped DEK; a wrapped DEK that does not open is refused.
func TestReseal(t *testing.T) {
	w, _ := newWrapper(t)
	ctx := context.Background()
	kek, err := crypt.NewKEK(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	other, err := crypt.NewKEK(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("1|replay|0|recording")
	s, err := crypt.Seal(kek, aad, []byte(`[{"type":2,"gzip":true}]`))
	if err != nil {
		t.Fatal(err)
	}
	next := []byte(`[{"type":2,"zstd":true}]`)
	ct, err := crypt.Reseal(kek, aad, s.WrappedDEK, next)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := crypt.Open(kek, aad, ct, s.WrappedDEK); err != nil || !bytes.Equal(got, next) {
		t.Fatalf("Open(resealed) = %q, %v", got, err)
	}
	if bytes.Equal(ct[:12], s.Ciphertext[:12]) {
		t.Error("the resealed payload reuses the original nonce")
	}
	// The old ciphertext still opens with the same key until it is shredded.
	if _, err := crypt.Open(kek, aad, s.Ciphertext, s.WrappedDEK); err != nil {
		t.Errorf("original after reseal: %v", err)
	}
	fresh, err := crypt.Seal(kek, aad, next) // same identity, another DEK
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	for _, tc := range []struct {
		name    string
		aad, ct []byte
		wrapped []byte
	}{
		{"flipped byte", aad, flip(ct, len(ct)-20), s.WrappedDEK},
		{"flipped nonce", aad, flip(ct, 3), s.WrappedDEK},
		{"truncated", aad, ct[:len(ct)-1], s.WrappedDEK},
		{"other identity", []byte("1|replay|1|recording"), ct, s.WrappedDEK},
		{"another wrapped dek", aad, ct, fresh.WrappedDEK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := crypt.Open(kek, tc.aad, tc.ct, tc.wrapped); !errors.Is(err, crypt.ErrIntegrity) {
				t.Errorf("err = %v, want ErrIntegrity", err)
			}
		})
	}
	for _, tc := range []struct {
		name    string
		kek     *crypt.KEK
		aad     []byte
		wrapped []byte
	}{
		{"other kek", other, aad, s.WrappedDEK},
		{"other identity", kek, []byte("1|replay|1|recording"), s.WrappedDEK},
		{"flipped wrapped key", kek, aad, flip(s.WrappedDEK, 15)},
	} {
		t.Run("reseal/"+tc.name, func(t *testing.T) {
			if _, err := crypt.Reseal(tc.kek, tc.aad, tc.wrapped, next); !errors.Is(err, crypt.ErrIntegrity) {
				t.Errorf("err = %v, want ErrIntegrity", err)
			}
		})
	}
}

func TestKEKRoundTripThroughKMS(t *testing.T) {
	w, k := newWrapper(t)
	ctx := context.Background()
	kek, err := crypt.NewKEK(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	s, err := crypt.Seal(kek, nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	back, err := crypt.UnwrapKEK(ctx, w, kek.ID, kek.Wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypt.Open(back, nil, s.Ciphertext, s.WrappedDEK); err != nil {
		t.Errorf("unwrapped KEK cannot open: %v", err)
	}
	// The KEK id is bound as AAD: a wrapped KEK cannot pose as another.
	if _, err := crypt.UnwrapKEK(ctx, w, uuid.New(), kek.Wrapped); !errors.Is(err, crypt.ErrIntegrity) {
		t.Errorf("unwrap under another id: err = %v, want ErrIntegrity", err)
	}
	if k.EncryptCalls() != 1 || k.DecryptCalls() != 2 {
		t.Errorf("KMS calls: %d encrypt, %d decrypt; want 1, 2", k.EncryptCalls(), k.DecryptCalls())
	}
}

func TestKeyringRotation(t *testing.T) {
	w, k := newWrapper(t)
	ctx := context.Background()
	var mu sync.Mutex
	var persisted []uuid.UUID
	kr := crypt.NewKeyring(w, func(_ context.Context, kek *crypt.KEK) error {
		mu.Lock()
		defer mu.Unlock()
		persisted = append(persisted, kek.ID)
		return nil
	}, time.Hour)
	first, err := kr.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		again, err := kr.Current(ctx)
		if err != nil || again.ID != first.ID {
			t.Fatalf("Current changed KEK before rotation: %v %v", again.ID, err)
		}
	}
	if k.EncryptCalls() != 1 || len(persisted) != 1 {
		t.Fatalf("KMS encrypts = %d, persisted = %d; want 1, 1", k.EncryptCalls(), len(persisted))
	}
}

func TestKeyringKeepsOldKEKWhenRotationFails(t *testing.T) {
	w, k := newWrapper(t)
	ctx := context.Background()
	kr := crypt.NewKeyring(w, func(context.Context, *crypt.KEK) error { return nil }, time.Minute)
	clock := func(sec int64) { crypt.SetKeyringClock(kr, func() time.Time { return time.Unix(sec, 0) }) }
	clock(0)
	first, err := kr.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock(3600)
	k.FailEncrypt(true)
	got, err := kr.Current(ctx)
	if err != nil || got.ID != first.ID {
		t.Fatalf("rotation failure: got %v, %v; want the old KEK", got, err)
	}
	crypt.WaitRotation(kr)
	// The failure moved the next attempt: calls before it do not retry.
	for range 100 {
		if got, err := kr.Current(ctx); err != nil || got.ID != first.ID {
			t.Fatalf("during backoff: got %v, %v; want the old KEK", got, err)
		}
	}
	if n := k.EncryptCalls(); n != 2 {
		t.Fatalf("KMS encrypts = %d, want 2 (the first KEK and one failed attempt)", n)
	}
	k.FailEncrypt(false)
	clock(3600 + 2) // past the first backoff step
	kr.Current(ctx)
	crypt.WaitRotation(kr)
	got, err = kr.Current(ctx)
	if err != nil || got.ID == first.ID {
		t.Fatalf("after recovery: got %v, %v; want a new KEK", got, err)
	}
}

// TestKeyringHungKMS: with KMS hanging when rotation is due, Current keeps
// answering at once with the current KEK and starts a single attempt; when
// KMS answers again the attempt completes and the new KEK takes over.
func TestKeyringHungKMS(t *testing.T) {
	w, k := newWrapper(t)
	ctx := context.Background()
	kr := crypt.NewKeyring(w, func(context.Context, *crypt.KEK) error { return nil }, time.Minute)
	crypt.SetKeyringClock(kr, func() time.Time { return time.Unix(0, 0) })
	first, err := kr.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crypt.SetKeyringClock(kr, func() time.Time { return time.Unix(3600, 0) })
	k.Hang(true)
	for range 1000 {
		got, err := kr.Current(ctx)
		if err != nil || got.ID != first.ID {
			t.Fatalf("KMS hung: got %v, %v; want the current KEK", got, err)
		}
	}
	// The attempt reaches the server in its own time.
	for i := 0; k.EncryptCalls() < 2 && i < 3000; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for range 100 {
		kr.Current(ctx)
	}
	if n := k.EncryptCalls(); n != 2 {
		t.Errorf("KMS encrypts = %d, want 2 (one attempt in flight, not one per call)", n)
	}
	k.Hang(false)
	crypt.WaitRotation(kr)
	if got, err := kr.Current(ctx); err != nil || got.ID == first.ID {
		t.Fatalf("after KMS answered: got %v, %v; want a new KEK", got, err)
	}
}

// TestKeyringFirstKEKHonoursContext: before any KEK exists a caller waits
// for the attempt, but no longer than its context.
func TestKeyringFirstKEKHonoursContext(t *testing.T) {
	w, k := newWrapper(t)
	kr := crypt.NewKeyring(w, func(context.Context, *crypt.KEK) error { return nil }, time.Hour)
	k.Hang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := kr.Current(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	k.Hang(false)
	crypt.WaitRotation(kr)
	if _, err := kr.Current(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestKeyringFailsWithoutAnyKEK(t *testing.T) {
	w, k := newWrapper(t)
	k.FailEncrypt(true)
	kr := crypt.NewKeyring(w, func(context.Context, *crypt.KEK) error { return nil }, time.Hour)
	if _, err := kr.Current(context.Background()); err == nil {
		t.Fatal("Current succeeded with KMS down and no KEK")
	}
}

func TestKEKCacheCallsKMSOncePerKEK(t *testing.T) {
	w, k := newWrapper(t)
	ctx := context.Background()
	kek, err := crypt.NewKEK(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	loads := 0
	c := crypt.NewKEKCache(w, func(_ context.Context, id uuid.UUID) ([]byte, error) {
		loads++
		if id != kek.ID {
			return nil, errors.New("unknown kek")
		}
		return kek.Wrapped, nil
	}, 8, time.Minute)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Get(ctx, kek.ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if k.DecryptCalls() != 1 || loads != 1 {
		t.Errorf("KMS decrypts = %d, loads = %d; want 1, 1", k.DecryptCalls(), loads)
	}
	if _, err := c.Get(ctx, uuid.New()); err == nil {
		t.Error("Get of an unknown KEK succeeded")
	}
}

// TestKEKCacheMissesDoNotQueue: a miss whose load hangs holds up neither a
// miss on another KEK nor a caller that gives up; the load it started goes
// on for the callers still waiting, and runs once.
func TestKEKCacheMissesDoNotQueue(t *testing.T) {
	w, k := newWrapper(t)
	ctx := context.Background()
	slow, err := crypt.NewKEK(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := crypt.NewKEK(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	loads := map[uuid.UUID]int{}
	c := crypt.NewKEKCache(w, func(ctx context.Context, id uuid.UUID) ([]byte, error) {
		mu.Lock()
		loads[id]++
		mu.Unlock()
		switch id {
		case slow.ID:
			close(started)
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return slow.Wrapped, nil
		case fast.ID:
			return fast.Wrapped, nil
		}
		return nil, errors.New("unknown kek")
	}, 8, time.Minute)

	// A guard, not a timing assertion: a queued miss would block forever.
	guard := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 30*time.Second) }

	impatient, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, err := c.Get(impatient, slow.ID)
		gaveUp <- err
	}()
	<-started

	gctx, gcancel := guard()
	defer gcancel()
	if got, err := c.Get(gctx, fast.ID); err != nil || got.ID != fast.ID {
		t.Fatalf("miss on another KEK while one load hangs: %v, %v", got, err)
	}

	patient := make(chan error, 1)
	go func() {
		got, err := c.Get(gctx, slow.ID)
		if err == nil && got.ID != slow.ID {
			err = errors.New("wrong kek")
		}
		patient <- err
	}()
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: err = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-patient; err != nil {
		t.Fatalf("waiter that stayed: %v", err)
	}
	if _, err := c.Get(gctx, slow.ID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if loads[slow.ID] != 1 || loads[fast.ID] != 1 || k.DecryptCalls() != 2 {
		t.Errorf("loads %v, KMS decrypts %d; want one of each", loads, k.DecryptCalls())
	}
}

// TestKEKCacheHungKMS: with KMS hanging, a reader's own deadline ends its
// wait; once KMS answers again the next reader gets the KEK.
func TestKEKCacheHungKMS(t *testing.T) {
	w, k := newWrapper(t)
	ctx := context.Background()
	kek, err := crypt.NewKEK(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	c := crypt.NewKEKCache(w, func(context.Context, uuid.UUID) ([]byte, error) { return kek.Wrapped, nil }, 8, time.Minute)
	k.Hang(true)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Get(short, kek.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with KMS hung: err = %v, want DeadlineExceeded", err)
	}
	k.Hang(false)
	got, err := c.Get(ctx, kek.ID)
	if err != nil || got.ID != kek.ID {
		t.Fatalf("Get after KMS recovered: %v, %v", got, err)
	}
}
