package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// ReadResult is one reader's time to assemble one replay.
type ReadResult struct {
	Reader   string  `json:"reader"`
	Segments int     `json:"segments"`
	TTFBMS   float64 `json:"ttfb_ms"`
	TotalMS  float64 `json:"total_ms"`
	Bytes    int64   `json:"bytes"` // JSON written
	// GCSReads is the object reads (class B) the stand-in answered.
	GCSReads int64 `json:"gcs_reads"`
	// Measured is how many segments were really read when fewer than all:
	// the total is then that time scaled to all segments.
	Measured int `json:"measured_segments,omitempty"`
}

// ReadRow compares the readers on one replay.
type ReadRow struct {
	Segments   int        `json:"segments"`
	Serve      ReadResult `json:"serve"`
	Sequential ReadResult `json:"naive_sequential"`
	Parallel   ReadResult `json:"naive_parallel10"`
}

// ReadReport is the read benchmark.
type ReadReport struct {
	// Layout says how the packed segments lie in their objects: "spread"
	// (a live replay: each segment in a different object, so one read per
	// segment for every reader).
	Layout string    `json:"layout"`
	Rows   []ReadRow `json:"replays"`
	// Ratios by replay size ("10", "100", "1000"): naive sequential ÷
	// Serve, and the 10-way parallel reader ÷ Serve.
	RatioTTFB          map[string]Num `json:"ratio_ttfb"`
	RatioTotal         map[string]Num `json:"ratio_total"`
	RatioTTFBParallel  map[string]Num `json:"ratio_ttfb_parallel10"`
	RatioTotalParallel map[string]Num `json:"ratio_total_parallel10"`
	// Burst is Serve on the same replays packed as they are when a
	// replay's segments arrive together (consecutive in few objects).
	Burst []ReadResult `json:"serve_burst_layout,omitempty"`
	// Extra is Serve with other settings, on the spread layout.
	Extra []ReadResult `json:"serve_variants,omitempty"`
	// ServeReadsPerSegment is Serve's class B operations per segment read
	// (spread layout), for the cost model.
	ServeReadsPerSegment float64 `json:"serve_gcs_reads_per_segment"`
}

func (r *ReadReport) computeRatios() {
	r.RatioTTFB, r.RatioTotal = map[string]Num{}, map[string]Num{}
	r.RatioTTFBParallel, r.RatioTotalParallel = map[string]Num{}, map[string]Num{}
	var reads, segs float64
	for _, row := range r.Rows {
		k := itoa(row.Segments)
		r.RatioTTFB[k] = Num(ratio(row.Sequential.TTFBMS, row.Serve.TTFBMS))
		r.RatioTotal[k] = Num(ratio(row.Sequential.TotalMS, row.Serve.TotalMS))
		r.RatioTTFBParallel[k] = Num(ratio(row.Parallel.TTFBMS, row.Serve.TTFBMS))
		r.RatioTotalParallel[k] = Num(ratio(row.Parallel.TotalMS, row.Serve.TotalMS))
		reads += float64(row.Serve.GCSReads)
		segs += float64(row.Segments)
	}
	if segs > 0 {
		r.ServeReadsPerSegment = reads / segs
	}
}

func (r *ReadReport) writeTable(b io.Writer) {
	fmt.Fprintf(b, "read, %s layout (a live replay: each segment in a different object): time to first byte / total\n", r.Layout)
	tw := newTable(b)
	fmt.Fprintln(tw, "segments\tServe\tnaive sequential\tnaive 10-way parallel\tseq ÷ Serve\t10-way ÷ Serve\t")
	for _, row := range r.Rows {
		k := itoa(row.Segments)
		seq := fmtMS(row.Sequential.TTFBMS) + " / " + fmtMS(row.Sequential.TotalMS)
		if row.Sequential.Measured > 0 {
			seq += fmt.Sprintf(" (from %d)", row.Sequential.Measured)
		}
		fmt.Fprintf(tw, "%d\t%s / %s\t%s\t%s / %s\t%s / %s\t%s / %s\t\n", row.Segments,
			fmtMS(row.Serve.TTFBMS), fmtMS(row.Serve.TotalMS), seq,
			fmtMS(row.Parallel.TTFBMS), fmtMS(row.Parallel.TotalMS),
			fmtRatio(float64(r.RatioTTFB[k])), fmtRatio(float64(r.RatioTotal[k])),
			fmtRatio(float64(r.RatioTTFBParallel[k])), fmtRatio(float64(r.RatioTotalParallel[k])))
	}
	tw.Flush()
	for _, x := range r.Burst {
		fmt.Fprintf(b, "  Serve, burst layout (segments arrived together), %d segments: %s / %s, %d GCS reads\n", x.Segments, fmtMS(x.TTFBMS), fmtMS(x.TotalMS), x.GCSReads)
	}
	for _, x := range r.Extra {
		fmt.Fprintf(b, "  %s, %d segments: %s / %s, %d GCS reads\n", x.Reader, x.Segments, fmtMS(x.TTFBMS), fmtMS(x.TotalMS), x.GCSReads)
	}
	fmt.Fprintf(b, "  Serve GCS reads per segment (spread layout): %.2f\n", r.ServeReadsPerSegment)
}

// ReplayRef names one replay a reader assembles.
type ReplayRef struct {
	ID       uuid.UUID `json:"id"`
	Segments int       `json:"segments"`
}

// ReaderSpec tells the naive reader process what to read.
type ReaderSpec struct {
	DSN         string      `json:"dsn"`
	Bucket      string      `json:"bucket"`
	KMSEndpoint string      `json:"kms_endpoint"`
	KMSKey      string      `json:"kms_key"`
	Project     int64       `json:"project"`
	Replays     []ReplayRef `json:"replays"`
	Warmup      ReplayRef   `json:"warmup"`
	// Workers is how many whole-object reads run at once; 1 is the
	// sequential reader.
	Workers int `json:"workers"`
	Reps    int `json:"reps"`
	// Prefix, when positive, reads only that many segments of a longer
	// replay and scales the time up (quick runs: the sequential reader
	// is all waiting, so its time is linear in segments).
	Prefix int `json:"prefix"`
}

// RunReader is the naive reader process: it assembles each replay of spec
// the way replay stores with one object per segment do (look the segments
// up, read each whole object, decrypt, decompress, write the JSON array),
// and prints the results as JSON to out.
func RunReader(ctx context.Context, spec ReaderSpec, out io.Writer) error {
	db, err := store.OpenURL(ctx, spec.DSN)
	if err != nil {
		return err
	}
	defer db.Close()
	gc, err := blob.NewGCSClient(ctx)
	if err != nil {
		return err
	}
	defer gc.Close()
	kc, err := crypt.NewKMSClient(ctx, spec.KMSEndpoint)
	if err != nil {
		return err
	}
	defer kc.Close()
	r := &naiveReader{
		db:      db,
		blobs:   blob.NewGCS(gc, spec.Bucket, time.Minute),
		keks:    crypt.NewKEKCache(crypt.NewKMS(kc, spec.KMSKey, 10*time.Second), db.WrappedKEK, 64, time.Hour),
		workers: max(spec.Workers, 1),
	}
	name := "naive sequential"
	if r.workers > 1 {
		name = fmt.Sprintf("naive %d-way parallel", r.workers)
	}
	if _, err := r.read(ctx, spec.Project, spec.Warmup.ID, 0, io.Discard); err != nil {
		return fmt.Errorf("warm-up read: %w", err)
	}
	var results []ReadResult
	for _, rp := range spec.Replays {
		var runs []ReadResult
		for range max(spec.Reps, 1) {
			prefix := 0
			if spec.Prefix > 0 && rp.Segments > spec.Prefix {
				prefix = spec.Prefix
			}
			res, err := r.read(ctx, spec.Project, rp.ID, prefix, io.Discard)
			if err != nil {
				return fmt.Errorf("read %s: %w", rp.ID, err)
			}
			res.Reader = name
			runs = append(runs, res)
		}
		results = append(results, median(runs))
	}
	return json.NewEncoder(out).Encode(results)
}

// median returns the run with the median total time.
func median(runs []ReadResult) ReadResult {
	slices.SortFunc(runs, func(a, b ReadResult) int { return cmpFloat(a.TotalMS, b.TotalMS) })
	return runs[len(runs)/2]
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type naiveReader struct {
	db      *store.DB
	blobs   blob.Store
	keks    *crypt.KEKCache
	workers int
}

// read assembles one replay into w. With prefix > 0 it reads only the
// first prefix segments and scales the total to all of them.
func (r *naiveReader) read(ctx context.Context, project int64, replay uuid.UUID, prefix int, w io.Writer) (ReadResult, error) {
	start := time.Now()
	_, rows, err := r.db.ReplaySegments(ctx, project, replay, segment.DefaultType, 0, math.MaxInt32)
	if err != nil {
		return ReadResult{}, err
	}
	lookup := time.Since(start)
	all := len(rows)
	if prefix > 0 && prefix < all {
		rows = rows[:prefix]
	}
	fw := &framer{w: w}
	var ttfb time.Duration
	open := func(i int) ([]byte, error) {
		row := &rows[i]
		ct, err := r.blobs.ReadRange(ctx, row.BlobPath, row.ByteStart, row.ByteStop-row.ByteStart) // the whole one-segment object
		if err != nil {
			return nil, err
		}
		kek, err := r.keks.Get(ctx, row.KEKID)
		if err != nil {
			return nil, err
		}
		pt, err := crypt.Open(kek, row.ID.AAD(), ct, row.WrappedDEK)
		if err != nil {
			return nil, err
		}
		return segment.Decode(row.Encoding, pt, segment.DefaultMaxDecompressed)
	}
	emit := func(i int, doc []byte) error {
		if err := fw.segment(doc); err != nil {
			return err
		}
		if i == 0 {
			ttfb = time.Since(start)
		}
		return nil
	}
	if r.workers <= 1 {
		for i := range rows {
			doc, err := open(i)
			if err != nil {
				return ReadResult{}, err
			}
			if err := emit(i, doc); err != nil {
				return ReadResult{}, err
			}
		}
	} else if err := r.parallel(ctx, len(rows), open, emit); err != nil {
		return ReadResult{}, err
	}
	if err := fw.end(); err != nil {
		return ReadResult{}, err
	}
	total := time.Since(start)
	res := ReadResult{Segments: all, TTFBMS: ms(ttfb), TotalMS: ms(total), Bytes: fw.n}
	if len(rows) < all {
		res.Measured = len(rows)
		res.TotalMS = ms(lookup + time.Duration(float64(total-lookup)*float64(all)/float64(len(rows))))
	}
	return res, nil
}

// parallel fetches with r.workers reads at once, never holding more than
// r.workers segments (in flight or waiting to be written), and writes them
// in order as soon as the next one is ready.
func (r *naiveReader) parallel(ctx context.Context, n int, open func(int) ([]byte, error), emit func(int, []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		doc []byte
		err error
	}
	slots := make(chan struct{}, r.workers)
	results := make([]chan result, n)
	for i := range results {
		results[i] = make(chan result, 1)
	}
	go func() {
		for i := range n {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				doc, err := open(i)
				results[i] <- result{doc, err}
			}()
		}
	}()
	for i := range n {
		var res result
		select {
		case res = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if res.err != nil {
			return res.err
		}
		if err := emit(i, res.doc); err != nil {
			return err
		}
		<-slots
	}
	return nil
}

// framer writes segments' event arrays as one JSON array.
type framer struct {
	w       io.Writer
	started bool
	n       int64
}

func (f *framer) write(b []byte) error {
	n, err := f.w.Write(b)
	f.n += int64(n)
	return err
}

func (f *framer) segment(doc []byte) error {
	inner := bytes.TrimSpace(doc)
	inner = bytes.TrimSuffix(bytes.TrimPrefix(inner, []byte("[")), []byte("]"))
	sep := []byte(",")
	if !f.started {
		sep = []byte("[")
		f.started = true
	}
	if err := f.write(sep); err != nil {
		return err
	}
	return f.write(inner)
}

func (f *framer) end() error {
	if !f.started {
		return f.write([]byte("[]\n"))
	}
	return f.write([]byte("]\n"))
}

// readServe assembles one replay through Serve's HTTP API.
func readServe(ctx context.Context, hc *http.Client, base, token string, project int64, replay uuid.UUID) (ReadResult, error) {
	return readURL(ctx, hc, fmt.Sprintf("%s/v1/projects/%d/replays/%s/recording", base, project, replay), token, replay)
}

// readURL reads one JSON recording response from Serve.
func readURL(ctx context.Context, hc *http.Client, url, token string, replay uuid.UUID) (ReadResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ReadResult{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return ReadResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return ReadResult{}, fmt.Errorf("serve %s: %s: %s", replay, resp.Status, b)
	}
	buf := make([]byte, 256<<10)
	var n int64
	var ttfb time.Duration
	var last byte
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 {
			if n == 0 {
				ttfb = time.Since(start)
			}
			n += int64(k)
			// The last non-space byte so far, looked for from the end: a
			// player does not scan what it receives byte by byte on top of
			// parsing it, so neither does the benchmark's client.
			for j := k - 1; j >= 0; j-- {
				if c := buf[j]; c != ' ' && c != '\n' && c != '\r' && c != '\t' {
					last = c
					break
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return ReadResult{}, fmt.Errorf("serve %s: body: %w", replay, err)
		}
	}
	if last != ']' {
		return ReadResult{}, fmt.Errorf("serve %s: body does not end a JSON array", replay)
	}
	return ReadResult{Reader: "Serve", TTFBMS: ms(ttfb), TotalMS: ms(time.Since(start)), Bytes: n}, nil
}

// layout writes the read benchmark's replays in the three layouts, with
// the production code's sealing, object writes and batch commit.
type layout struct {
	db     *store.DB
	blobs  blob.Store
	keys   *crypt.Keyring
	corpus *Corpus
	// fixed, when set, holds each replay's payloads in segment order
	// (replay r's segment s is fixed[r][s]) in place of the corpus's.
	fixed [][]Payload

	mu    sync.Mutex
	infos map[*Payload]segment.Info
}

// payload picks replay r's segment s's payload from the corpus.
func (l *layout) payload(r, s int) *Payload {
	if l.fixed != nil {
		return &l.fixed[r][s]
	}
	if s == 0 {
		return &l.corpus.First[r%len(l.corpus.First)]
	}
	return &l.corpus.Rest[(r*7919+s*31)%len(l.corpus.Rest)]
}

func (l *layout) info(p *Payload) (segment.Info, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if in, ok := l.infos[p]; ok {
		return in, nil
	}
	in, err := segment.Validate(p.Gzip, segment.Limits{})
	if err != nil {
		return in, err
	}
	if l.infos == nil {
		l.infos = map[*Payload]segment.Info{}
	}
	l.infos[p] = in
	return in, nil
}

type layoutSeg struct {
	replay, seg int
}

// burst packs each replay's segments consecutively into objects of at most
// 8 MiB or 1,000 segments (Pack's flush thresholds): the layout of a replay
// whose segments arrive together.
func (l *layout) burst(ctx context.Context, project int64, replays []ReplayRef) error {
	var batches [][]layoutSeg
	for ri, r := range replays {
		var cur []layoutSeg
		size := 0
		for s := range r.Segments {
			n := len(l.payload(ri, s).Gzip)
			if len(cur) > 0 && (size+n > 8<<20 || len(cur) >= 1000) {
				batches = append(batches, cur)
				cur, size = nil, 0
			}
			cur = append(cur, layoutSeg{ri, s})
			size += n
		}
		if len(cur) > 0 {
			batches = append(batches, cur)
		}
	}
	return l.write(ctx, project, replays, batches)
}

// perSegment writes every segment as its own object: the naive layout, and
// for one replay's reads the same as the spread layout of live sessions.
func (l *layout) perSegment(ctx context.Context, project int64, replays []ReplayRef) error {
	var batches [][]layoutSeg
	for ri, r := range replays {
		for s := range r.Segments {
			batches = append(batches, []layoutSeg{{ri, s}})
		}
	}
	return l.write(ctx, project, replays, batches)
}

func (l *layout) write(ctx context.Context, project int64, replays []ReplayRef, batches [][]layoutSeg) error {
	kek, err := l.keys.Current(ctx)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for bi, batch := range batches {
		g.Go(func() error {
			path := fmt.Sprintf("bench/p%d/%06d-%s", project, bi, uuid.NewString()[:8])
			var data []byte
			segs := make([]store.Segment, 0, len(batch))
			now := time.Now()
			for _, ls := range batch {
				p := l.payload(ls.replay, ls.seg)
				info, err := l.info(p)
				if err != nil {
					return err
				}
				id := segment.ID{ProjectID: project, ReplayID: replays[ls.replay].ID, SegmentID: ls.seg, Type: segment.DefaultType}
				sealed, err := crypt.Seal(kek, id.AAD(), p.Gzip)
				if err != nil {
					return err
				}
				off := int64(len(data))
				data = append(data, sealed.Ciphertext...)
				segs = append(segs, store.Segment{
					ID: id, BlobPath: path, ByteStart: off, ByteStop: int64(len(data)), Encoding: info.Encoding,
					RawSize: info.RawSize, EventCount: info.EventCount, FirstTS: info.FirstTS, LastTS: info.LastTS,
					HasFullSnapshot: info.HasFullSnapshot, KEKID: kek.ID, WrappedDEK: sealed.WrappedDEK,
					RetentionDays: segment.DefaultRetentionDays, CreatedAt: now, ExpiresAt: now.Add(90 * 24 * time.Hour),
				})
			}
			if err := l.blobs.Create(ctx, path, data); err != nil {
				return err
			}
			_, err := l.db.CommitBatch(ctx, store.Blob{Path: path, RetentionDays: segment.DefaultRetentionDays, Size: int64(len(data)), SegmentCount: len(segs)}, segs)
			return err
		})
	}
	return g.Wait()
}
