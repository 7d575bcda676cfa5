package closer

import (
	"slices"
	"testing"
)

func TestStackClosesNewestFirstOnce(t *testing.T) {
	var got []int
	var s Stack
	for i := range 3 {
		s.Add(func() { got = append(got, i) })
	}
	s.Close()
	s.Close()
	if want := []int{2, 1, 0}; !slices.Equal(got, want) {
		t.Fatalf("closed %v, want %v once", got, want)
	}
}
