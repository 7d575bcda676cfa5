package blob_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newStore(t *testing.T) (*blob.GCS, *testenv.GCS) {
	t.Helper()
	g := testenv.NewGCS(t, "b")
	c, err := g.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return blob.NewGCS(c, "b", 5*time.Second), g
}

func TestGCS(t *testing.T) {
	s, g := newStore(t)
	ctx := context.Background()
	data := []byte("0123456789abcdefghij")
	if err := s.Create(ctx, "r90/a", data); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "r90/a", []byte("other")); !errors.Is(err, blob.ErrExists) {
		t.Errorf("second create: err = %v, want ErrExists", err)
	}
	if got, err := g.Object("b", "r90/a"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Read = %q, %v; the first write must survive", got, err)
	}
	tests := []struct {
		off, n int64
		want   string
	}{
		{0, 5, "01234"},
		{10, 10, "abcdefghij"},
		{19, 1, "j"},
	}
	for _, tc := range tests {
		got, err := s.ReadRange(ctx, "r90/a", tc.off, tc.n)
		if err != nil || string(got) != tc.want {
			t.Errorf("ReadRange(%d, %d) = %q, %v; want %q", tc.off, tc.n, got, err, tc.want)
		}
	}
	if c := g.Counts(); c.RangedReads != int64(len(tests)) || c.Uploads != 2 {
		t.Errorf("server saw %+v, want %d ranged reads and 2 uploads", c, len(tests))
	}
	if _, err := s.ReadRange(ctx, "missing", 0, 1); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("missing object: err = %v, want ErrNotFound", err)
	}
	if err := s.Create(ctx, "r30/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := s.List(ctx, "r", func(o blob.Object) error {
		names = append(names, o.Name)
		if o.Created.IsZero() {
			t.Errorf("%s has no creation time", o.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	if len(names) != 2 || names[0] != "r30/b" || names[1] != "r90/a" {
		t.Errorf("List = %v", names)
	}
	if err := s.Delete(ctx, "r90/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "r90/a"); err != nil {
		t.Errorf("deleting a missing object: %v, want nil", err)
	}
}

func TestGCSUploadFailureIsUnavailable(t *testing.T) {
	s, g := newStore(t)
	g.FailAllUploads(true)
	err := s.Create(context.Background(), "x", []byte("x"))
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// TestCreateParts writes objects from parts: the object is their
// concatenation, whatever the parts' sizes (empty ones included), under
// the CRC32C the upload sent.
func TestCreateParts(t *testing.T) {
	s, g := newStore(t)
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789"), 100_000)
	tests := []struct {
		name  string
		parts [][]byte
	}{
		{"none", nil},
		{"one", [][]byte{[]byte("abc")}},
		{"empty parts", [][]byte{{}, []byte("a"), nil, []byte("bc"), {}}},
		{"many", [][]byte{[]byte("x"), big, []byte("y"), big[:7]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "r30/parts/" + tc.name
			if err := s.Create(ctx, name, tc.parts...); err != nil {
				t.Fatal(err)
			}
			want := bytes.Join(tc.parts, nil)
			got, err := g.Object("b", name)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("object holds %d bytes (%v), want the %d bytes of the parts", len(got), err, len(want))
			}
			if n := blob.Size(tc.parts); n != len(want) {
				t.Errorf("Size = %d, want %d", n, len(want))
			}
		})
	}
}
