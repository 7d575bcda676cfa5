package serve

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// A window read (?from_ts=&to_ts=, ms since the epoch, inclusive) returns
// what a player needs to show that span of a recording, which is exactly
// what a full read gives, filtered:
//
//   - For recordings, every event from the chain start on, in full-read
//     order, whose timestamp is at or before to_ts. The chain start is the
//     last full snapshot (rrweb type 2) with a timestamp at or before
//     from_ts, or the meta event (type 4) just before it when there is one;
//     with no such snapshot, the replay's first event.
//   - For slices (console, network, timeline), every event whose timestamp
//     lies in [from_ts, to_ts].
//
// An event without a timestamp counts as at its segment's first timestamp
// (0 for a segment with none). The segments read are chosen from their
// stored metadata alone; only the segments at the window's edges are
// parsed, to trim their events, and that is done in place in the
// segment's own decoded buffer. The chain start is looked for in the last
// snapshot segment starting at or before from_ts; when that segment's
// snapshots all come later, the read starts again from the snapshot
// segment before it (and, after maxChainAttempts, from the beginning), so
// the result stays exact even then, at the cost of another read.

// windowQuery is the parsed time window of a recording request.
type windowQuery struct {
	from, to int64
	open     bool // to_ts was not given: through the end
	// noChain (?chain=0) asks a recording's window without its snapshot
	// chain: only the events in [from_ts, to_ts], as for slices. A player
	// that already holds everything up to from_ts loads what follows this
	// way, without reading the snapshot segment again.
	noChain bool
}

// maxChainAttempts bounds how many snapshot segments a window read tries
// before it starts at the replay's beginning.
const maxChainAttempts = 3

// parseWindow reads ?from_ts= and ?to_ts=; nil when neither is given.
func parseWindow(v url.Values) (*windowQuery, error) {
	_, hasFrom := v["from_ts"]
	_, hasTo := v["to_ts"]
	chain, hasChain := v["chain"]
	if !hasFrom && !hasTo {
		if hasChain {
			return nil, fmt.Errorf("%w: chain= applies to a time window (from_ts, to_ts) only", derrors.InvalidArgument)
		}
		return nil, nil
	}
	w := &windowQuery{to: math.MaxInt64, open: !hasTo}
	if hasChain {
		switch chain[0] {
		case "0":
			w.noChain = true
		case "1":
		default:
			return nil, fmt.Errorf("%w: chain=%q must be 0 or 1", derrors.InvalidArgument, chain[0])
		}
	}
	var ok bool
	if hasFrom {
		if w.from, ok = millisParam(v.Get("from_ts")); !ok {
			return nil, fmt.Errorf("%w: from_ts=%q must be milliseconds since the epoch (0 or more)", derrors.InvalidArgument, v.Get("from_ts"))
		}
	}
	if hasTo {
		if w.to, ok = millisParam(v.Get("to_ts")); !ok {
			return nil, fmt.Errorf("%w: to_ts=%q must be milliseconds since the epoch (0 or more)", derrors.InvalidArgument, v.Get("to_ts"))
		}
	}
	if w.to < w.from {
		return nil, fmt.Errorf("%w: to_ts %d is before from_ts %d", derrors.InvalidArgument, w.to, w.from)
	}
	return w, nil
}

// millisParam parses a timestamp: decimal digits only, within int64.
func millisParam(s string) (int64, bool) {
	if s == "" || len(s) > 19 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// next returns the next window's bounds (same length), when there is one.
func (w *windowQuery) next(info store.WindowInfo) (from, to int64, ok bool) {
	if w.open || !info.More || w.to == math.MaxInt64 {
		return 0, 0, false
	}
	from = w.to + 1
	span := w.to - w.from
	if span > math.MaxInt64-from {
		return from, math.MaxInt64, true
	}
	return from, from + span, true
}

// nextLink is the Link header naming the next window, relative to the
// request's path.
func nextLink(path string, q url.Values, from, to int64) string {
	n := url.Values{}
	for k, vs := range q {
		n[k] = vs
	}
	n.Set("from_ts", strconv.FormatInt(from, 10))
	n.Set("to_ts", strconv.FormatInt(to, 10))
	return "<" + path + "?" + n.Encode() + `>; rel="next"`
}

// errNoChain says that the window's first segment holds no full snapshot
// at or before from_ts: the read must start earlier.
var errNoChain = errors.New("no snapshot at or before from_ts in the first segment")

// trimmer cuts a window's edge segments down to the window's events.
type trimmer struct {
	w     *windowQuery
	chain bool
	// findChain: rows[0] holds the snapshot the window starts at, and its
	// events before the chain start are dropped.
	findChain bool
}

// trim returns the events of doc (segment i, row) that belong to the
// window, as a JSON array. A segment entirely inside comes back as it is,
// without parsing; an edge segment is compacted in doc's own storage.
func (t *trimmer) trim(i int, row *store.Segment, doc []byte) ([]byte, error) {
	chainHere := t.findChain && i == 0
	lo := int64(math.MinInt64)
	if !t.chain {
		lo = t.w.from
	}
	if !chainHere && row.LastTS <= t.w.to && row.FirstTS >= lo && (row.FirstTS > 0 || lo <= 0) {
		return doc, nil
	}
	tsOf := func(ev segment.Event) int64 {
		if ev.TS == 0 {
			return row.FirstTS
		}
		return ev.TS
	}
	// Two passes over the chain segment rather than a list of its events:
	// a segment of millions of tiny events must not cost memory per event.
	chainAt := 0 // index of the first event the window may keep
	if chainHere {
		chainAt = -1
		k, prevMeta := 0, false
		err := segment.Events(doc, func(ev segment.Event) error {
			if ev.HasType && ev.Type == segment.EventTypeFullSnapshot && tsOf(ev) <= t.w.from {
				chainAt = k
				if prevMeta {
					chainAt = k - 1
				}
			}
			prevMeta = ev.HasType && ev.Type == segment.EventTypeMeta
			k++
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("trim segment %s: %w", row.ID, err)
		}
		if chainAt < 0 {
			return nil, errNoChain
		}
	}
	// Compact the kept events towards the front of doc as the walk goes.
	// Writing stays behind reading: every event is preceded in doc by at
	// least a '[' or a ',', so n never passes the start of the event being
	// copied, and the walk only reads ahead of it. The opening bracket is
	// written last, as doc's own may lie after leading whitespace.
	n, k := 1, 0
	err := segment.Events(doc, func(ev segment.Event) error {
		idx := k
		k++
		if ts := tsOf(ev); idx < chainAt || ts > t.w.to || ts < lo {
			return nil
		}
		if n > 1 {
			doc[n] = ','
			n++
		}
		n += copy(doc[n:], ev.Raw)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trim segment %s: %w", row.ID, err)
	}
	doc[0], doc[n] = '[', ']'
	return doc[:n+1], nil
}
