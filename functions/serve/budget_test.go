package serve

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestBudget: claims are granted in arrival order as room frees up,
// read-ahead never takes what the oldest claim waits for, a claim that
// gives up holds nothing, and force is the one way past the limit.
func TestBudget(t *testing.T) {
	ctx := context.Background()
	b := newBudget(100)
	if n, err := b.claim(ctx, 60); err != nil || n != 60 {
		t.Fatalf("claim 60 of 100: %d, %v", n, err)
	}
	first := make(chan int64, 1)
	go func() {
		n, _ := b.claim(ctx, 50)
		first <- n
	}()
	waitQueued(t, b, 1)
	second := make(chan int64, 1)
	go func() {
		n, _ := b.claim(ctx, 10)
		second <- n
	}()
	waitQueued(t, b, 2)
	// 10 would fit, but the claim ahead of it waits for 50: arrival order.
	if b.take(30) {
		t.Error("read-ahead took 30 while a claim of 50 waits with 40 free")
	}
	select {
	case <-second:
		t.Fatal("a later claim went before an earlier one")
	case <-time.After(20 * time.Millisecond):
	}
	b.give(60)
	if n := <-first; n != 50 {
		t.Errorf("first claim got %d", n)
	}
	if n := <-second; n != 10 {
		t.Errorf("second claim got %d", n)
	}
	if held, _ := b.usage(); held != 60 {
		t.Errorf("held %d, want 60", held)
	}
	if !b.take(40) || b.take(1) {
		t.Error("read-ahead must take exactly what is left")
	}

	// A claim that gives up holds nothing and does not block the queue.
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, err := b.claim(cctx, 100)
		gaveUp <- err
	}()
	waitQueued(t, b, 1)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled claim: %v", err)
	}
	b.give(100)
	if held, peak := b.usage(); held != 0 || peak != 100 {
		t.Errorf("held %d peak %d, want 0 and 100", held, peak)
	}
	// A claim above the limit is granted as the limit, once alone.
	if n, err := b.claim(ctx, 500); err != nil || n != 100 {
		t.Errorf("claim 500 of 100: %d, %v", n, err)
	}
	if b.overshoot() != 0 {
		t.Errorf("overshoot %d without force", b.overshoot())
	}
	b.force(30)
	if b.overshoot() != 30 {
		t.Errorf("overshoot %d after forcing 30 past a full budget", b.overshoot())
	}
}

// waitQueued waits until n claims wait in b.
func waitQueued(t *testing.T, b *budget, n int) {
	t.Helper()
	for range 1000 {
		b.mu.Lock()
		q := len(b.queue)
		b.mu.Unlock()
		if q == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d claims never queued", n)
}
