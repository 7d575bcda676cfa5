package packer

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/replayvault/replayvault/shared/testenv"
)

// deadButton is a segment in which a page's button is clicked five times
// within half a second and nothing on the page changes, then three console
// errors follow.
func deadButton(t0 int64) []byte {
	ev := fmt.Sprintf(`[{"type":4,"timestamp":%[1]d,"data":{"href":"https://shop.example/orders/%[1]d","width":800,"height":600}},
		{"type":2,"timestamp":%[1]d,"data":{"node":{"type":0,"id":1,"childNodes":[{"type":2,"id":2,"tagName":"html","attributes":{},"childNodes":[
			{"type":2,"id":3,"tagName":"body","attributes":{},"childNodes":[{"type":2,"id":4,"tagName":"button","attributes":{"id":"buy"},"childNodes":[]}]}]}]}}}`, t0)
	for i := range 5 {
		ev += fmt.Sprintf(`,{"type":3,"timestamp":%d,"data":{"source":2,"type":2,"id":4,"x":1,"y":1}}`, t0+100+int64(i)*100)
	}
	for i := range 3 {
		ev += fmt.Sprintf(`,{"type":6,"timestamp":%d,"data":{"plugin":"rrweb/console@1","payload":{"level":"error","payload":["Uncaught Error: order %d failed"]}}}`,
			t0+700+int64(i)*10, i)
	}
	ev += fmt.Sprintf(`,{"type":3,"timestamp":%d,"data":{"source":1,"positions":[]}}]`, t0+3000)
	return []byte(ev)
}

// TestPackDetectsIssues: Pack records the issues of the segments it stores,
// the same interaction in two replays lands in one group, and a redelivery
// counts nothing twice.
func TestPackDetectsIssues(t *testing.T) {
	d := testenv.NewDeps(t)
	p := newPacker(t, d, testConfig(), nil)
	ctx := context.Background()
	r1, r2 := uuid.New(), uuid.New()
	enc, _ := zstd.NewWriter(nil)
	payload2 := enc.EncodeAll(deadButton(1_700_000_100_000), nil) // compressed: detection decompresses
	for _, m := range []Message{
		message(1, r1, 0, deadButton(1_700_000_000_000)),
		message(1, r2, 0, payload2),
		message(1, r1, 0, deadButton(1_700_000_000_000)), // redelivery
	} {
		if _, err := p.Ingest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	type group struct {
		kind          string
		seen, replays int64
	}
	r, err := d.DB.Pool.Query(ctx, `SELECT kind, times_seen, replay_count FROM issue_groups WHERE project_id = 1 ORDER BY kind`)
	if err != nil {
		t.Fatal(err)
	}
	var got []group
	for r.Next() {
		var g group
		if err := r.Scan(&g.kind, &g.seen, &g.replays); err != nil {
			t.Fatal(err)
		}
		got = append(got, g)
	}
	want := []group{{"console_errors", 2, 2}, {"dead_click", 10, 2}, {"rage_click", 2, 2}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups = %v, want %v", got, want)
	}
	var ts []int64
	r, err = d.DB.Pool.Query(ctx, `SELECT ts FROM issue_occurrences WHERE replay_id = $1 AND kind = 'rage_click'`, r1)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var x int64
		if err := r.Scan(&x); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, x)
	}
	if len(ts) != 1 || ts[0] != 1_700_000_000_300 {
		t.Errorf("rage click of replay 1 at %v, want [1700000000300] (the third click)", ts)
	}
}
