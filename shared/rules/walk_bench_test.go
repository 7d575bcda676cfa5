package rules

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/replayvault/replayvault/shared/rules/modules/piiscrub"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkPreCheck is the strings-mode walk's parts on a real-shaped
// 30 KB segment (workload.Recording), with the scrub's default wants
// (every input masked) and without input masking ("-nothing"): the
// pre-filter over every event ("hop"), the '@' search alone, the walk of
// every event, and the walk that passes over the events the pre-filter
// clears ("walkspans", what Pack runs).
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
}
