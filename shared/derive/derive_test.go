package derive

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// Events as rrweb's plugins and Sentry's replay integration record them.
const (
	consolePlugin = `{"type":6,"data":{"plugin":"rrweb/console@1","payload":{"level":"error","trace":[],"payload":["\"boom\""]}},"timestamp":1700000000100}`
	networkPlugin = `{"type":6,"data":{"plugin":"rrweb/network@1","payload":{"requests":[{"url":"https://api.example.test/x","method":"GET","status":200}]}},"timestamp":1700000000200}`
	otherPlugin   = `{"type":6,"data":{"plugin":"rrweb/sequential-id@1","payload":{"id":3}},"timestamp":1700000000300}`
	sentryConsole = `{"type":5,"timestamp":1700000000400,"data":{"tag":"breadcrumb","payload":{"timestamp":1700000000.4,"type":"default","category":"console","data":{"logger":"console"},"level":"warning","message":"careful"}}}`
	sentryFetch   = `{"type":5,"timestamp":1700000000500,"data":{"tag":"breadcrumb","payload":{"category":"fetch","data":{"method":"POST","url":"/api","status_code":500}}}}`
	sentryClick   = `{"type":5,"timestamp":1700000000600,"data":{"tag":"breadcrumb","payload":{"category":"ui.click","message":"body > button"}}}`
	spanResource  = `{"type":5,"timestamp":1700000000700,"data":{"tag":"performanceSpan","payload":{"op":"resource.fetch","description":"https://api.example.test/y","startTimestamp":1700000000.6,"endTimestamp":1700000000.7}}}`
	spanLCP       = "{\"type\":5,\"timestamp\":1700000000800,\n \"data\":{\"tag\":\"performanceSpan\",\"payload\":{\"op\":\"largest-contentful-paint\",\"data\":{\"value\":1200}}}}"
	customOther   = `{"type":5,"timestamp":1700000000900,"data":{"tag":"options","payload":{"sessionSampleRate":1}}}`
	meta          = `{"type":4,"data":{"href":"https://example.test/checkout","width":1280,"height":800},"timestamp":1700000000000}`
	incremental   = `{"type":3,"data":{"source":1,"positions":[]},"timestamp":1700000000050}`
	snapshot      = `{"type":2,"data":{"node":{"type":0,"childNodes":[],"id":1}},"timestamp":1700000000000}`
	noData        = `{"type":5,"timestamp":1700000000950}`
)

func TestFrom(t *testing.T) {
	doc := "[" + strings.Join([]string{meta, snapshot, incremental, consolePlugin, networkPlugin, otherPlugin,
		sentryConsole, sentryFetch, sentryClick, spanResource, spanLCP, customOther, noData}, ", ") + "]"
	got, err := From([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Slice{
		{Console, []byte("[" + consolePlugin + "," + sentryConsole + "]"), segment.Info{EventCount: 2, FirstTS: 1700000000100, LastTS: 1700000000400}},
		{Network, []byte("[" + networkPlugin + "," + sentryFetch + "," + spanResource + "]"), segment.Info{EventCount: 3, FirstTS: 1700000000200, LastTS: 1700000000700}},
		// Every other custom event, even one without data, is on the timeline.
		{Timeline, []byte("[" + meta + "," + sentryClick + "," + spanLCP + "," + customOther + "," + noData + "]"), segment.Info{EventCount: 5, FirstTS: 1700000000000, LastTS: 1700000000950}},
	}
	for i := range want {
		want[i].Info.Encoding = segment.Plain
		want[i].Info.RawSize = int64(len(want[i].JSON))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slices (-want +got):\n%s", diff)
	}
	// Each slice is itself a segment the validator accepts, with the same
	// metadata.
	for _, s := range got {
		info, err := segment.Validate(s.JSON, segment.Limits{})
		if err != nil {
			t.Fatalf("%s slice: %v", s.Type, err)
		}
		if diff := cmp.Diff(s.Info, info); diff != "" {
			t.Errorf("%s slice info (-derived +validated):\n%s", s.Type, diff)
		}
	}

	// A segment with nothing to slice gives no slices.
	if got, err := From([]byte("[" + snapshot + "," + incremental + "]")); err != nil || len(got) != 0 {
		t.Errorf("From(no slice events) = %v, %v", got, err)
	}
	if _, err := From([]byte(`{"type":5}`)); err == nil {
		t.Error("From(not an array) succeeded")
	}
}

// withDevtools returns a recording segment of about size bytes in which
// about one event in ten is a console, network or breadcrumb event.
func withDevtools(rng *rand.Rand, i, size int) []byte {
	base := workload.Segment(rng, i, 1_700_000_000_000+int64(i)*60_000, size)
	extra := []string{consolePlugin, networkPlugin, sentryConsole, sentryFetch, sentryClick, spanResource, spanLCP}
	var b strings.Builder
	b.WriteString("[")
	n := 0
	err := segment.Events(base, func(ev segment.Event) error {
		if n > 0 {
			b.WriteString(",")
		}
		b.Write(ev.Raw)
		n++
		if n%10 == 0 {
			fmt.Fprintf(&b, ",%s", extra[rng.IntN(len(extra))])
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	b.WriteString("]")
	return []byte(b.String())
}

// BenchmarkDerive measures what deriving slices adds to Pack: Validate
// alone against ValidateEvents with the slicer's hook (the same scan, plus
// classifying and copying the devtools events and compressing the slices,
// as the packer does), on the same payloads; and reports the slices' stored
// size (zstd) as a share of the recording's.
//
//	go test -run '^$' -bench . -benchmem ./shared/derive/
func BenchmarkDerive(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var payloads [][]byte
	var raw int64
	for i := range 32 {
		doc := withDevtools(rng, i, 40_000)
		raw += int64(len(doc))
		payloads = append(payloads, workload.Gzip(doc))
	}
	b.Run("validate", func(b *testing.B) {
		b.SetBytes(raw / int64(len(payloads)))
		for i := 0; i < b.N; i++ {
			if _, err := segment.Validate(payloads[i%len(payloads)], segment.Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("validate+slices", func(b *testing.B) {
		b.SetBytes(raw / int64(len(payloads)))
		var recStored, sliceStored int64
		for i := 0; i < b.N; i++ {
			p := payloads[i%len(payloads)]
			var s Slicer
			if _, err := segment.ValidateEvents(p, segment.Limits{}, s.Hook(256<<10)); err != nil {
				b.Fatal(err)
			}
			for _, sl := range s.Slices() {
				sliceStored += int64(len(segment.Compress(sl.JSON)))
			}
			recStored += int64(len(p))
		}
		b.ReportMetric(100*float64(sliceStored)/float64(recStored), "slice-%-of-recording")
	})
}
