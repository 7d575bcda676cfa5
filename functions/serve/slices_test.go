package serve

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestDerivedSlices packs recordings holding console, network and Sentry
// events with slice derivation on, and reads each slice through Serve's
// type parameter (whole and as a time window): exactly the recording's
// events of that kind, in order, while the recording still reads back
// whole.
func TestDerivedSlices(t *testing.T) {
	e := newEnv(t, defaults())
	rng := rand.New(rand.NewPCG(7, 8))
	const project = 4
	replay := uuid.New()
	var (
		segs                       []seg
		console, network, timeline []string
	)
	for i := range 6 {
		base := int64(1_700_000_000_000) + int64(i)*60_000
		evs := []string{}
		for _, ev := range compactEvents(t, workload.Segment(rng, i, base, 3000)) {
			evs = append(evs, ev)
			if strings.HasPrefix(ev, `{"type":4,`) {
				timeline = append(timeline, ev)
			}
		}
		ts := base + 30_000
		c := fmt.Sprintf(`{"type":6,"data":{"plugin":"rrweb/console@1","payload":{"level":"log","payload":["%d"]}},"timestamp":%d}`, i, ts)
		n := fmt.Sprintf(`{"type":5,"timestamp":%d,"data":{"tag":"performanceSpan","payload":{"op":"resource.xhr","description":"/api/%d"}}}`, ts+1, i)
		k := fmt.Sprintf(`{"type":5,"timestamp":%d,"data":{"tag":"breadcrumb","payload":{"category":"ui.click","message":"button#%d"}}}`, ts+2, i)
		evs = append(evs, c, n, k)
		console, network, timeline = append(console, c), append(network, n), append(timeline, k)
		raw := []byte("[" + strings.Join(evs, ",") + "]")
		segs = append(segs, seg{project: project, replay: replay, id: i, raw: raw, payload: workload.Gzip(raw)})
	}
	packWith(t, e.d, packer.Config{
		FlushBytes: 64 << 20, FlushSegments: 4, FlushAge: 50 * time.Millisecond, MaxConcurrency: 1000,
		MaxBufferBytes: 1 << 30, FlushTimeout: time.Minute,
		Limits: segment.Limits{MaxDecompressed: 16 << 20}, DeriveSlices: true,
	}, segs)

	tok := token(t, project)
	read := func(query string) []string {
		return compactEvents(t, readAll(t, get(t, recordingURL(e.url, project, replay, query), tok)))
	}
	if diff := cmp.Diff(events(t, segs), read("")); diff != "" {
		t.Errorf("recording (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		typ  string
		want []string
	}{{"console", console}, {"network", network}, {"timeline", timeline}} {
		if diff := cmp.Diff(tc.want, read("type="+tc.typ)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.typ, diff)
		}
		// Minutes 2 to 4 only: segments 2 and 3 hold them.
		from, to := int64(1_700_000_000_000)+2*60_000, int64(1_700_000_000_000)+4*60_000-1
		var want []string
		for _, ev := range tc.want {
			if ts := timestampOf(t, ev); ts >= from && ts <= to {
				want = append(want, ev)
			}
		}
		if diff := cmp.Diff(want, read(fmt.Sprintf("type=%s&from_ts=%d&to_ts=%d", tc.typ, from, to))); diff != "" {
			t.Errorf("%s window (-want +got):\n%s", tc.typ, diff)
		}
	}
	// The slices are stored beside the recording, in the same objects.
	for _, typ := range []string{"console", "network", "timeline"} {
		_, rows, err := e.d.DB.ReplaySegments(t.Context(), project, replay, typ, 0, 1<<31-1)
		if err != nil {
			t.Fatal(err)
		}
		rec := segmentRows(t, e.d, project, replay)
		for i, r := range rows {
			if r.BlobPath != rec[r.ID.SegmentID].BlobPath {
				t.Errorf("%s slice %d is in %s, its recording segment in %s", typ, i, r.BlobPath, rec[r.ID.SegmentID].BlobPath)
			}
		}
		if typ != "timeline" && len(rows) != len(segs) {
			t.Errorf("%d %s slices for %d segments", len(rows), typ, len(segs))
		}
	}
}

func timestampOf(t *testing.T, ev string) int64 {
	t.Helper()
	i := strings.Index(ev, `"timestamp":`)
	if i < 0 {
		t.Fatalf("no timestamp in %s", ev)
	}
	var ts int64
	if _, err := fmt.Sscanf(ev[i+len(`"timestamp":`):], "%d", &ts); err != nil {
		t.Fatal(err)
	}
	return ts
}
