package rules

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/replayvault/replayvault/shared/rules/modules/piiscrub"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkPreCheck is the strings-mode walk's parts on a real-shaped
// 30 KB segment (workload.Recording), with the scrub's default wants
// (every input masked) and without input masking ("-nothing"): the
// pre-filter over every event ("hop"), the '@' search alone, the walk of
// every event, and the walk that passes over the events the pre-filter
// clears ("walkspans"); and the validating pass Pack makes with spans
// ("pass"), with the scrub's check folded in ("pass-check"), and the walk
// that trusts the events that pass cleared ("walkcleared"): pass-check
// plus walkcleared is what Pack runs now, in place of pass plus hop plus
// walkspans.
//
//	go test -run '^$' -bench BenchmarkPreCheck ./shared/rules/
func BenchmarkPreCheck(b *testing.B) {
	seg := workload.Recording(rand.New(rand.NewPCG(3, 4)), 2, 30<<10, 0, 1_700_000_000_000)[1]
	spans := spansOf(b, seg)
	w := compileWants(piiscrub.Describe(nil))
	wn := compileWants(piiscrub.Describe([]byte(`{"mask_all_inputs":false}`)))
	each := func(f func(ev []byte)) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(int64(len(seg)))
			for b.Loop() {
				for _, sp := range spans {
					f(seg[sp.Start:sp.End])
				}
			}
		}
	}
	b.Run("hop", each(func(ev []byte) { scanMayEdit(ev, w) }))
	b.Run("hop-nothing", each(func(ev []byte) { scanMayEdit(ev, wn) }))
	b.Run("at", each(func(ev []byte) { bytes.IndexByte(ev, '@') }))
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			wk, _ := buildTable(seg, w, nil)
			putWalker(wk)
		}
	})
	b.Run("walkspans", func(b *testing.B) {
		for b.Loop() {
			wk, _ := buildTableSpans(seg, w, nil, spans, false)
			putWalker(wk)
		}
	})
	check := scrubCheck([]*bound{{wants: w}})
	pass := func(check *segment.ScrubCheck) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(int64(len(seg)))
			got := make([]Span, 0, len(spans))
			hook := &segment.EventHook{Scrub: check, OnEvent: func(m segment.EventMeta) {
				got = append(got, Span{Start: m.Start, End: m.End, Clear: !m.MayScrub, NoTags: !m.TagName})
			}}
			for b.Loop() {
				got = got[:0]
				if _, err := segment.ValidateEvents(seg, segment.Limits{}, hook); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("pass", pass(nil))
	b.Run("pass-check", pass(check))
	cleared := foldPass(b, seg, check)
	b.Run("walkcleared", func(b *testing.B) {
		for b.Loop() {
			wk, _ := buildTableSpans(seg, w, nil, cleared, true)
			putWalker(wk)
		}
	})
}
