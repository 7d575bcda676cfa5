package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/blob"
)

func TestCountingStore(t *testing.T) {
	g := NewGCS(t, "b")
	c, err := g.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	in := NewCountingStore(blob.NewGCS(c, "b", 5*time.Second), 0)
	ctx := context.Background()
	if err := in.Create(ctx, "o", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := in.ReadRange(ctx, "o", 1, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.List(ctx, "", func(blob.Object) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := in.Delete(ctx, "o"); err != nil {
		t.Fatal(err)
	}
	want := Counts{ClassA: 2, ClassB: 3, Deletes: 1, BytesWritten: 5, BytesRead: 6}
	if got := in.Counts(); got != want {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
}
