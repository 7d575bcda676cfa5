package bench

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"

	"github.com/replayvault/replayvault/shared/workload"
)

// Long replays are recorded in segments of segmentMS, as browser SDKs flush
// them, with a meta event and full snapshot every snapshotEvery segments
// (rrweb's checkout every 5 minutes).
const (
	segmentMS     = 5000
	snapshotEvery = 60
)

// timedRecording generates the payloads of one replay of n segments that
// starts at startMS: segment i holds events spread evenly over [startMS +
// i·segmentMS, startMS + (i+1)·segmentMS), a meta event and full snapshot
// open every snapshotEvery-th segment, and each segment's compressed size
// is drawn from sizes like the corpus's. Unlike the corpus, whose payloads
// all start at the same time, its timestamps are those of one continuous
// recording, so that reads by time window find what they would in a real
// replay. Deterministic in seed; generated on every CPU.
func timedRecording(sizes workload.SizeDist, n int, startMS int64, seed uint64) []Payload {
	out := make([]Payload, n)
	var wg sync.WaitGroup
	workers := max(runtime.GOMAXPROCS(0), 1)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				raw := timedSegment(rng, startMS+int64(i)*segmentMS, i%snapshotEvery == 0, sizes.Sample(rng))
				gz := workload.Gzip(raw)
				out[i] = Payload{Gzip: gz, B64: base64.StdEncoding.EncodeToString(gz), Raw: len(raw)}
			}
		}()
	}
	wg.Wait()
	return out
}

// rawPerCompressed is about how much timedSegment's JSON shrinks under
// gzip (its text is random letters, like workload.Segment's).
const rawPerCompressed = 2.9

// timedSegment returns one segment's JSON array of about target compressed
// bytes, its events' timestamps spread evenly over [base, base+segmentMS).
func timedSegment(rng *rand.Rand, base int64, snapshot bool, target int) []byte {
	approx := max(int(float64(target)*rawPerCompressed), 256)
	// The events without their timestamps first: how many there are sets
	// the spacing.
	var events [][]byte
	size := 0
	add := func(b []byte) {
		events = append(events, b)
		size += len(b) + 30
	}
	if snapshot {
		add([]byte(`{"type":4,"data":{"href":"https://example.test/checkout","width":1280,"height":800}`))
		add([]byte(`{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[{"type":2,"tagName":"body","attributes":{"class":"page"},"childNodes":[{"type":3,"textContent":"` +
			letters(rng, 2000) + `","id":4}],"id":3}],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}}`))
	}
	for size < approx {
		var b []byte
		switch rng.IntN(3) {
		case 0: // mouse move
			b = append(b, `{"type":3,"data":{"source":1,"positions":[{"x":`...)
			b = strconv.AppendInt(b, int64(rng.IntN(1280)), 10)
			b = append(b, `,"y":`...)
			b = strconv.AppendInt(b, int64(rng.IntN(800)), 10)
			b = append(b, `,"id":`...)
			b = strconv.AppendInt(b, int64(rng.IntN(500)), 10)
			b = append(b, `,"timeOffset":0}]}`...)
		case 1: // input
			b = append(b, `{"type":3,"data":{"source":5,"text":"`...)
			b = append(b, letters(rng, 8+rng.IntN(40))...)
			b = append(b, `","isChecked":false,"id":`...)
			b = strconv.AppendInt(b, int64(rng.IntN(500)), 10)
			b = append(b, '}')
		default: // mutation
			b = append(b, `{"type":3,"data":{"source":0,"texts":[{"id":`...)
			b = strconv.AppendInt(b, int64(rng.IntN(500)), 10)
			b = append(b, `,"value":"`...)
			b = append(b, letters(rng, 20+rng.IntN(200))...)
			b = append(b, `"}],"attributes":[],"removes":[],"adds":[]}`...)
		}
		add(b)
	}
	var out bytes.Buffer
	out.Grow(size + 2)
	out.WriteByte('[')
	for k, ev := range events {
		if k > 0 {
			out.WriteByte(',')
		}
		ts := base + int64(k)*segmentMS/int64(len(events))
		if snapshot && k == 1 {
			ts = base // rrweb takes the meta event and the snapshot together
		}
		out.Write(ev)
		out.WriteString(`,"timestamp":`)
		out.WriteString(strconv.FormatInt(ts, 10))
		out.WriteByte('}')
	}
	out.WriteByte(']')
	return out.Bytes()
}

const alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func letters(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}
