package closer

import (
	"errors"
	"slices"
	"strings"
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

func TestBuild(t *testing.T) {
	var closed []string
	v, closeAll, err := Build(func(c *Stack) (int, error) {
		c.Add(func() { closed = append(closed, "db") })
		c.Add(func() { closed = append(closed, "kms") })
		return 7, nil
	})
	if err != nil || v != 7 || len(closed) != 0 {
		t.Fatalf("Build = %d, %v; closed %v before Close", v, err, closed)
	}
	closeAll()
	if got := strings.Join(closed, ","); got != "kms,db" {
		t.Errorf("closed %s, want kms,db (newest first)", got)
	}

	closed = nil
	_, closeAll, err = Build(func(c *Stack) (int, error) {
		c.Add(func() { closed = append(closed, "db") })
		return 0, errors.New("kms unreachable")
	})
	if err == nil || closeAll != nil {
		t.Fatalf("failed Build returned err %v, close %v", err, closeAll != nil)
	}
	if got := strings.Join(closed, ","); got != "db" {
		t.Errorf("after a failed Build closed %q, want db", got)
	}
}
