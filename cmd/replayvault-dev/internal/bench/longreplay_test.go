package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/replayvault/replayvault/functions/serve"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestTimedRecording checks that the long replay's segments are what the
// seek measurement assumes: valid, each within its 5 seconds, in order, and
// with a snapshot (at the segment's first millisecond) exactly every
// snapshotEvery segments.
func TestTimedRecording(t *testing.T) {
	const n, start = 2*snapshotEvery + 5, int64(1_750_000_000_000)
	sizes := workload.SizeDist{Median: 4 << 10, Min: 1 << 10, Max: 32 << 10, Sigma: 0.5}
	segs := timedRecording(sizes, n, start, 3)
	again := timedRecording(sizes, n, start, 3)
	for i, p := range segs {
		if !bytes.Equal(p.Gzip, again[i].Gzip) {
			t.Fatalf("segment %d differs between two runs with the same seed", i)
		}
		info, err := segment.Validate(p.Gzip, segment.Limits{})
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		base := start + int64(i)*segmentMS
		if info.FirstTS != base || info.LastTS >= base+segmentMS || info.LastTS <= info.FirstTS {
			t.Errorf("segment %d: timestamps [%d, %d], want [%d, %d)", i, info.FirstTS, info.LastTS, base, base+segmentMS)
		}
		if snap := i%snapshotEvery == 0; info.HasFullSnapshot != snap {
			t.Errorf("segment %d: full snapshot %v, want %v", i, info.HasFullSnapshot, snap)
		}
		var evs []struct {
			Type      int   `json:"type"`
			Timestamp int64 `json:"timestamp"`
		}
		raw, err := segment.Decode(info.Encoding, p.Gzip, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &evs); err != nil {
			t.Fatal(err)
		}
		if i%snapshotEvery == 0 && (evs[0].Type != 4 || evs[1].Type != 2 || evs[1].Timestamp != base) {
			t.Errorf("segment %d starts with types %d, %d at %d; want meta and full snapshot at %d", i, evs[0].Type, evs[1].Type, evs[1].Timestamp, base)
		}
		for k := 1; k < len(evs); k++ {
			if evs[k].Timestamp < evs[k-1].Timestamp {
				t.Fatalf("segment %d: event %d goes back in time", i, k)
			}
		}
		if p.Raw != len(raw) {
			t.Errorf("segment %d: Raw = %d, want %d", i, p.Raw, len(raw))
		}
	}
}

// TestSeedListRows seeds a small project and checks the rows' shapes
// against the same rules computed here, through the store's list query.
func TestSeedListRows(t *testing.T) {
	d := testenv.NewDeps(t)
	ctx := context.Background()
	const project, n = 7, 3000
	if err := seedListRows(ctx, d.DSN, project, n, nil); err != nil {
		t.Fatal(err)
	}
	live := func(i int) bool { return i%100 != 1 }
	tests := []struct {
		name string
		f    store.ListFilter
		want func(i int) bool
	}{
		{"all", store.ListFilter{}, live},
		{"url", store.ListFilter{URL: "/checkout/"}, func(i int) bool { return live(i) && i%5 == 4 }},
		{"rare url", store.ListFilter{URL: "/product/42"}, func(i int) bool {
			return live(i) && i%5 == 2 && strings.HasPrefix(fmt.Sprint(i%1000), "42")
		}},
		{"error id", store.ListFilter{ErrorID: "err-3"}, func(i int) bool { return live(i) && i%listErrorEvery == 0 && i/listErrorEvery%listErrors == 3 }},
		{"min duration", store.ListFilter{MinDurationMS: 45 * 60 * 1000}, func(i int) bool { return live(i) && i*7919%3600 >= 45*60 }},
		{"one day", store.ListFilter{FromTS: listStartMS + 24*3600*1000, ToTS: listStartMS + 2*24*3600*1000 - 1}, func(i int) bool {
			s := listStartMS + int64(i)*(listDays*24*3600*1000/n)
			return live(i) && s >= listStartMS+24*3600*1000 && s < listStartMS+2*24*3600*1000
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := 0
			for i := 1; i <= n; i++ {
				if tc.want(i) {
					want++
				}
			}
			got := 0
			var after *store.ListCursor
			for {
				page, err := d.DB.ListReplays(ctx, project, tc.f, after, 500, 100_000)
				if err != nil {
					t.Fatal(err)
				}
				got += len(page.Replays)
				if page.Next == nil {
					break
				}
				after = page.Next
			}
			if got != want || want == 0 {
				t.Errorf("listed %d replays, want %d (> 0)", got, want)
			}
		})
	}
}

// TestMeasureList runs the list mix against the real Serve handler on
// seeded rows: every kind's requests are valid, and cursors are followed.
func TestMeasureList(t *testing.T) {
	d := testenv.NewDeps(t)
	ctx := context.Background()
	const project = 9
	if err := seedListRows(ctx, d.DSN, project, 20_000, nil); err != nil {
		t.Fatal(err)
	}
	secret := randomHex(32)
	srv := httptest.NewServer(serve.New(serve.Config{}, d.DB, d.Blobs, nil, auth.NewVerifier(secret, auth.Policy{})))
	defer srv.Close()
	tok, err := auth.Mint(secret, project, []string{auth.ScopeRead}, "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const sessions, pages = 2, 3
	res, err := measureList(ctx, &http.Client{Timeout: time.Minute}, srv.URL, tok, project, sessions, pages, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kinds) != len(listKinds) {
		t.Fatalf("%d kinds, want %d", len(res.Kinds), len(listKinds))
	}
	total := 0
	for _, k := range res.Kinds {
		total += k.Pages
		if k.Pages < sessions || k.Pages > sessions*pages {
			t.Errorf("%s: %d pages, want %d..%d", k.Kind, k.Pages, sessions, sessions*pages)
		}
		if k.P50MS <= 0 || k.P99MS < k.P50MS {
			t.Errorf("%s: p50 %g, p99 %g", k.Kind, k.P50MS, k.P99MS)
		}
	}
	// With 20,000 rows the unfiltered and one-day lists fill every page:
	// the cursor was followed.
	if k := res.Kinds[0]; k.Pages != sessions*pages || k.Replays != sessions*pages*50 {
		t.Errorf("%s: %d pages of %d replays, want %d of %d", k.Kind, k.Pages, k.Replays, sessions*pages, sessions*pages*50)
	}
	if res.Pages != total || res.P99MS < res.P50MS {
		t.Errorf("all: %d pages (kinds add to %d), p50 %g p99 %g", res.Pages, total, res.P50MS, res.P99MS)
	}
}

func sampleLong() *LongReport {
	return &LongReport{
		Seek: SeekResult{Segments: 1440, Minutes: 120, SeekMinute: 90, LateMinute: 94.9, WindowS: 60,
			Full:       LongRead{ReadResult: ReadResult{TTFBMS: 40, TotalMS: 3900, Bytes: 130e6, GCSReads: 1440}, GCSBytes: 42e6, CPUMS: 1200},
			Window:     LongRead{ReadResult: ReadResult{TTFBMS: 30, TotalMS: 35, Bytes: 860e3, GCSReads: 13}, GCSBytes: 320e3},
			Late:       LongRead{ReadResult: ReadResult{TTFBMS: 45, TotalMS: 160, Bytes: 5e6, GCSReads: 72}, GCSBytes: 2e6},
			RatioBytes: 151, RatioGCSBytes: 131, RatioTime: 111, RatioTimeLate: 24, RatioBytesLate: 26},
		Compacted: CompactedResult{Segments: 1000, Level: "off", CompactionS: 0.8, CompactionCPUS: 0.5, BytesBefore: 31e6, BytesCopied: 31e6, Objects: 1,
			Serve:      LongRead{ReadResult: ReadResult{TTFBMS: 140, TotalMS: 1340, Bytes: 105e6, GCSReads: 3}, CPUMS: 1250},
			Naive:      ReadResult{TTFBMS: 28, TotalMS: 2520},
			RatioTotal: Num(2520.0 / 1340)},
		List: ListResult{Rows: 1_000_000, SeedS: 51, Sessions: 60, PagesPerSession: 4, Limit: 50, P50MS: 2, P99MS: 30, Pages: 1200,
			Kinds: []ListQuery{{Kind: "error id", P50MS: 3.5, P99MS: 30, Pages: 240, Replays: 8}}},
	}
}

// TestCompactLevelIsShredDefault: the long step compacts as a deployment
// with Shred's defaults does.
func TestCompactLevelIsShredDefault(t *testing.T) {
	f, ok := reflect.TypeOf(config.Shred{}).FieldByName("CompactZstdLevel")
	if !ok || !strings.Contains(f.Tag.Get("env"), "default="+defaultCompactZstdLevel) {
		t.Errorf("config.Shred.CompactZstdLevel's tag %q does not default to %q", f.Tag, defaultCompactZstdLevel)
	}
}

func TestLongTargets(t *testing.T) {
	l := sampleLong()
	got := map[string]bool{}
	for _, tg := range l.targets() {
		got[tg.Want+" "+strings.SplitN(tg.Name, ":", 2)[0]] = tg.Met
		if !tg.Met && tg.Note == "" && strings.Contains(tg.Name, "10-way") {
			t.Errorf("%s missed without a note", tg.Name)
		}
	}
	want := map[string]bool{
		"≥ 20× seek to minute 90 of a 120-minute replay (1440 segments)":          true,
		"≥ 10× seek to minute 90 of a 120-minute replay (1440 segments)":          true,
		"≤ 3 compacted 1000-segment replay":                                       true,
		"≥ 10× compacted 1000-segment replay total read, 10-way parallel ÷ Serve": false,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("targets met:\n got %v\nwant %v", got, want)
	}
	// The note tells a CPU-bound Serve from one that waited on others.
	if note := l.targets()[3].Note; strings.Contains(note, "waited") || !strings.Contains(note, "1.25 s of CPU") {
		t.Errorf("note for a busy Serve: %s", note)
	}
	l.Compacted.Serve.CPUMS = 450
	if note := l.targets()[3].Note; !strings.Contains(note, "waited") || !strings.Contains(note, "ratio is 5.60×") || !strings.Contains(note, "Even that") ||
		!strings.Contains(note, "stored gzip, as uploaded") {
		t.Errorf("note for a waiting Serve: %s", note)
	}
	// After a compaction that re-encoded, the note says so.
	l.Compacted.Level, l.Compacted.SegmentsReencoded = "default", 1000
	if note := l.targets()[3].Note; !strings.Contains(note, "1000 segments were re-encoded to zstd") || strings.Contains(note, "as uploaded") {
		t.Errorf("note after re-encoding: %s", note)
	}
	l.Compacted.Serve.CPUMS = 200
	if note := l.targets()[3].Note; !strings.Contains(note, "ratio is 12.6×") || strings.Contains(note, "Even that") {
		t.Errorf("note for a waiting Serve whose CPU alone is within the target: %s", note)
	}
	l.Compacted.Serve.CPUMS = 450
	// The bytes target takes the smaller of the two byte ratios.
	l.Seek.RatioGCSBytes = 19
	if tg := l.targets()[0]; tg.Met {
		t.Errorf("bytes target met with %g× from storage", float64(l.Seek.RatioGCSBytes))
	}
	// No GCS read counted is not "≤ 3".
	l.Compacted.Serve.GCSReads = 0
	if tg := l.targets()[2]; tg.Met {
		t.Error("reads target met with no read counted")
	}
	var nilLong *LongReport
	if tg := nilLong.targets(); tg != nil {
		t.Errorf("targets of no long report = %v", tg)
	}
}

func TestLongTableAndJSON(t *testing.T) {
	rep := sampleReport()
	rep.Long = sampleLong()
	rep.Targets = targets(rep)
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"long replays: seek in a 1440-segment, 120-minute replay",
		"window at minute 90.0", "111× / 151×",
		"10-way ÷ Serve 1.88×", "3 GCS reads",
		"list: 1.00M replay rows", "error id", "all",
		"compacted 1000-segment replay total read, 10-way parallel ÷ Serve",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
	var j bytes.Buffer
	if err := rep.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(j.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Long == nil || back.Long.Compacted.Serve.GCSReads != 3 || back.Long.List.P99MS != 30 ||
		math.Abs(float64(back.Long.Seek.RatioTime)-111) > 1e-9 || back.Long.Seek.Full.CPUMS != 1200 {
		t.Errorf("JSON round trip lost the long report: %+v", back.Long)
	}
}
