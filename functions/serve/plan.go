package serve

import (
	"cmp"
	"slices"

	"github.com/replayvault/replayvault/shared/store"
)

// read is one ranged read of the plan: a byte range of one blob and the
// segments that lie in it.
type read struct {
	blob   string
	off    int64
	length int64 // what the read holds until its segments are decrypted
	// segs are indices into the request's segment rows (which are in
	// segment order), in byte order within the blob.
	segs []int
	// first is the smallest index in segs: the writer needs this read once
	// it gets there.
	first int
}

// planLimits shape the read plan.
type planLimits struct {
	// gap: two ranges of one blob are read together when fewer than gap
	// bytes lie between them (0 turns coalescing off).
	gap int64
	// maxRead caps a coalesced read; a single larger segment is read alone.
	maxRead int64
	// firstRead caps the read that holds the replay's first segment
	// (within maxRead): nothing can be sent before it completes, so a
	// smaller first read brings the first byte forward.
	firstRead int64
	// span caps the replay bytes (the segments' sealed sizes, in segment
	// order) from a read's first segment to its last. A read whose
	// segments are far apart in the replay would be held in memory from
	// the time the writer needs its first segment until it writes its
	// last; this keeps that time inside the read-ahead window, and bounds
	// what a read's segments that the writer reaches later hold (see
	// leaseBytes).
	span int64
}

// plan groups rows (one replay's segments, in segment order) by blob and
// coalesces nearby ranges into reads. It returns the reads ordered by the
// first segment each holds, which is the order the writer needs them in,
// and owner[i], the read that holds rows[i].
func plan(rows []store.Segment, lim planLimits) (reads []read, owner []int) {
	if len(rows) == 0 {
		return nil, nil
	}
	reads = coalesce(rows, orderByBlob(rows), streamOffsets(rows), lim)
	slices.SortFunc(reads, func(a, b read) int { return cmp.Compare(a.first, b.first) })
	owner = make([]int, len(rows))
	for k := range reads {
		for _, i := range reads[k].segs {
			owner[i] = k
		}
	}
	return reads, owner
}

// streamOffsets returns pos, where pos[i] is where segment i starts in the
// replay's stream of sealed bytes: pos[j+1]-pos[i] is the span from i to j.
func streamOffsets(rows []store.Segment) []int64 {
	pos := make([]int64, len(rows)+1)
	for i := range rows {
		pos[i+1] = pos[i] + sealedBytes(&rows[i])
	}
	return pos
}

// orderByBlob returns the segment indices grouped by blob (in order of each
// blob's first segment) and by offset within a blob. It counting-sorts on a
// small per-blob number, which is stable (segment order within a blob), and
// then sorts each blob's run by offset: already sorted when segments were
// packed in order, which the sort detects in linear time. Every read is a
// run of this order, so reads share its storage.
func orderByBlob(rows []store.Segment) []int {
	n := len(rows)
	blobOf := make([]int, n)
	blobNum := make(map[string]int, 8)
	var counts []int
	last := -1
	for i := range rows {
		if last < 0 || rows[i].BlobPath != rows[i-1].BlobPath {
			num, ok := blobNum[rows[i].BlobPath]
			if !ok {
				num = len(counts)
				blobNum[rows[i].BlobPath] = num
				counts = append(counts, 0)
			}
			last = num
		}
		blobOf[i] = last
		counts[last]++
	}
	starts := make([]int, len(counts)+1) // of each blob's run in order
	for b, c := range counts {
		starts[b+1] = starts[b] + c
	}
	order := make([]int, n)
	next := append([]int(nil), starts[:len(counts)]...)
	for i, b := range blobOf {
		order[next[b]] = i
		next[b]++
	}
	for b := range counts {
		slices.SortFunc(order[starts[b]:starts[b+1]], func(x, y int) int {
			return cmp.Compare(rows[x].ByteStart, rows[y].ByteStart)
		})
	}
	return order
}

// coalesce walks order (from orderByBlob) and merges neighbouring ranges of
// one blob into one read while the gap, the read's size and its span in the
// replay (pos, from streamOffsets) stay within lim.
func coalesce(rows []store.Segment, order []int, pos []int64, lim planLimits) []read {
	reads := make([]read, 0, 8)
	start := 0 // of the current run in order
	cur := read{}
	lo, hi := 0, 0 // smallest and largest segment index in the run
	for j, i := range order {
		row := &rows[i]
		if j > start {
			stop := max(cur.off+cur.length, row.ByteStop)
			nlo, nhi := min(lo, i), max(hi, i)
			capacity := lim.maxRead
			if nlo == 0 && lim.firstRead > 0 {
				capacity = min(capacity, lim.firstRead)
			}
			if row.BlobPath == cur.blob &&
				row.ByteStart-(cur.off+cur.length) < lim.gap &&
				stop-cur.off <= capacity &&
				pos[nhi+1]-pos[nlo] <= lim.span {
				cur.length = stop - cur.off
				lo, hi = nlo, nhi
				continue
			}
			cur.segs, cur.first = order[start:j], lo
			reads = append(reads, cur)
		}
		start = j
		cur = read{blob: row.BlobPath, off: row.ByteStart, length: sealedBytes(row)}
		lo, hi = i, i
	}
	cur.segs, cur.first = order[start:], lo
	return append(reads, cur)
}

// sealedBytes is segment row's size as stored; decrypted, it holds a few
// bytes less.
func sealedBytes(row *store.Segment) int64 { return row.ByteStop - row.ByteStart }

// decodedBytes is what segment row may hold once decoded: its raw size,
// plus an eighth and decodeSlack for the room a decoder or the allocator's
// size classes leave past the end (fetcher.decode trims anything more).
func decodedBytes(row *store.Segment) int64 {
	return row.RawSize + row.RawSize/8 + decodeSlack
}

// decodeSlack is room a decoded segment may hold past its raw size and an
// eighth.
const decodeSlack = 64

// leaseBytes is what the reads the writer waits for can hold at once when
// each starts as the writer needs it (see fetcher.admit): the read, every
// earlier read that still holds a segment the writer has not reached (a
// read's segments need not be consecutive in the replay: late segments, or
// a replay whose segments alternate between objects; such a read holds at
// most its length, streaming or decrypted), and the one segment the writer
// has decoded. It is the most of that over the plan. The reads that count
// all hold a segment within the span limit after the one the writer waits
// for.
func leaseBytes(rows []store.Segment, reads []read) int64 {
	var most, pending int64
	ends := make([]int64, len(rows)) // ends[i]: lengths of reads whose last segment is i
	p := 0                           // segments before p have been taken
	for k := range reads {
		for ; p < reads[k].first; p++ {
			pending -= ends[p]
		}
		most = max(most, pending+reads[k].length)
		last := reads[k].first
		for _, i := range reads[k].segs {
			last = max(last, i)
		}
		if last > reads[k].first {
			pending += reads[k].length
			ends[last] += reads[k].length
		}
	}
	return most + maxDecoded(rows)
}

// maxDecoded is the most that one of rows may hold decoded.
func maxDecoded(rows []store.Segment) int64 {
	var most int64
	for i := range rows {
		most = max(most, decodedBytes(&rows[i]))
	}
	return most
}
