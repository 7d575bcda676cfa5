package chaos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/store/storetest"
	"github.com/replayvault/replayvault/shared/workload"
)

// loadScenarios bound memory under load; they run with --load at full
// size and, scaled down, with --quick.
var loadScenarios = []scenario{
	{"load-pack-1000-concurrent", packLoad, needPubSub, loadGrace},
	{"load-serve-80-readers", serveLoad, 0, loadGrace},
	{"load-project-shred", shredLoad, 0, loadGrace},
}

// loadGrace is the sweeper's grace in the load scenarios: their Packs run
// with the deployed timeouts (a flush may take GCS_TIMEOUT 30 s + DB_TIMEOUT
// 15 s on a loaded machine). No object gets that old during a scenario, so
// the orphan check is vacuous there; the crash scenarios make it real.
const loadGrace = time.Minute

// loadSize is the size of the load scenarios.
type loadSize struct {
	// Pack: messages of payload bytes (plain JSON), pushed by concurrency
	// senders at once to a Pack with MAX_CONCURRENCY concurrency and
	// MAX_BUFFER_BYTES buffer.
	packMessages, packConcurrency, payload int
	packBuffer                             int64
	// Serve: readers read one replay of serveSegments segments at once.
	serveSegments, serveReaders int
	// Shred: one project of shredReplays x shredPerReplay rows.
	shredReplays, shredPerReplay int
}

// The deployed instances' memory (terraform pack_memory, serve_memory).
const instanceMemoryMiB = 1024

var (
	fullLoad  = loadSize{2000, 1000, 1 << 20, 256 << 20, 100_000, 80, 5000, 1000}
	quickLoad = loadSize{24, 24, 1 << 20, 16 << 20, 2_000, 4, 20, 1000}
)

func sizeOf(o Options) loadSize {
	if o.Load {
		return fullLoad
	}
	return quickLoad
}

// oomKill watches c as Cloud Run watches an instance: once its resident
// memory passes limitMiB it is killed (an OOM), cancel is called so the
// scenario stops at once, and oomed reports it.
func oomKill(ctx context.Context, c *child, limitMiB float64, cancel context.CancelFunc) (oomed func() bool) {
	var hit atomic.Bool
	go func() {
		for ctx.Err() == nil {
			if c.peakRSSMiB() >= limitMiB {
				hit.Store(true)
				c.kill()
				cancel()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return hit.Load
}

func (r *Report) figure(name string, v float64) {
	if r.Figures == nil {
		r.Figures = map[string]float64{}
	}
	r.Figures[name] = v
}

// packLoad: Pack (a child process, as deployed: MAX_CONCURRENCY 1000,
// MAX_BUFFER_BYTES 256 MiB, 1 GiB instance) takes 1 MiB plain payloads
// from 1000 concurrent pushes. It must shed load with 429s (redelivered,
// as Pub/Sub does, with backoff) rather than outgrow the instance: its peak
// RSS stays under the instance's memory, and every message ends up stored.
func packLoad(ctx context.Context, e *env, o Options, rep *Report) error {
	sz := sizeOf(o)
	pack, err := newChild("pack-"+e.name, e.sd.exe, e.sd.dir, map[string]string{
		"FUNCTION_TARGET":       "Pack",
		"DATABASE_URL":          e.dsn,
		"BUCKET":                e.bucket,
		"STORAGE_EMULATOR_HOST": e.gcsHost,
		"KMS_KEY":               e.kms.KeyName(),
		"KMS_ENDPOINT":          e.kms.Endpoint(),
		"GOOGLE_CLOUD_PROJECT":  pubsubProject,
		"PUBSUB_EMULATOR_HOST":  e.sd.pubsub.Host(),
		"REJECT_TOPIC":          e.name + "-rejects",
		"MAX_CONCURRENCY":       strconv.Itoa(sz.packConcurrency),
		"MAX_BUFFER_BYTES":      strconv.FormatInt(sz.packBuffer, 10),
		"FLUSH_AGE":             "200ms",
		"LOG_LEVEL":             "warn",
	})
	if err != nil {
		return err
	}
	if err := pack.start(ctx); err != nil {
		return err
	}
	defer func() {
		pack.stop(10 * time.Second)
		rep.ChildPeakRSSMiB = pack.peakRSSMiB()
		rep.LimitMiB = instanceMemoryMiB
	}()
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	oomed := oomKill(ctx, pack, instanceMemoryMiB, cancel)

	// One payload for every message (Pack stores each under its own id);
	// the request bodies stream it, so the sender holds one copy.
	rng := rand.New(rand.NewPCG(7, 7))
	raw := workload.Segment(rng, 0, 1_700_000_000_000, sz.payload)
	b64 := []byte(base64.StdEncoding.EncodeToString(raw))
	var msgs []message
	e.mu.Lock()
	var replay uuid.UUID
	for i := range sz.packMessages {
		if i%100 == 0 {
			replay = uuid.New() // replays of 100 segments
		}
		m := message{id: segment.ID{ProjectID: 1, ReplayID: replay, SegmentID: i % 100, Type: segment.DefaultType}, raw: raw}
		msgs = append(msgs, m)
		e.unacked[m.id], e.raws[m.id] = true, raw
	}
	e.mu.Unlock()
	rep.Published = len(msgs)

	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: sz.packConcurrency, MaxConnsPerHost: sz.packConcurrency, DisableCompression: true}}
	var overloaded, nacked, failed atomic.Int64
	work := make(chan message)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(15 * time.Minute)
	for range sz.packConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				// Pub/Sub's retry policy (terraform: 10 s to 600 s), a
				// tenth of it: exponential backoff with jitter.
				backoff := time.Second
				for ctx.Err() == nil && time.Now().Before(deadline) {
					status, err := pushOnce(ctx, hc, pack.url()+"/projects/"+pubsubProject+"/topics/"+e.name, m, b64)
					switch {
					case err == nil && status/100 == 2:
						e.ack(m.id, nil)
					case status == http.StatusTooManyRequests:
						overloaded.Add(1)
					case err != nil:
						failed.Add(1)
					default:
						nacked.Add(1)
					}
					if err == nil && status/100 == 2 {
						break
					}
					time.Sleep(backoff/2 + rand.N(backoff))
					backoff = min(2*backoff, 10*time.Second)
				}
			}
		}()
	}
	for _, m := range msgs {
		work <- m
	}
	close(work)
	wg.Wait()
	rep.Overloaded = overloaded.Load()
	rep.figure("seconds", time.Since(start).Seconds())
	rep.figure("nacked_other", float64(nacked.Load()))
	rep.figure("no_answer", float64(failed.Load()))
	switch {
	case oomed():
		return fmt.Errorf("pack passed the instance's %d MiB (killed as an OOM would) after %d of %d messages were acked",
			instanceMemoryMiB, len(msgs)-e.unackedCount(), len(msgs))
	case !pack.running() && outer.Err() == nil:
		return fmt.Errorf("pack died under load:\n%s", pack.logTail())
	}
	return outer.Err()
}

// pushOnce POSTs one message as the body of a Pub/Sub push (no CloudEvent
// headers: the function decodes the push JSON whichever way it is
// registered).
func pushOnce(ctx context.Context, hc *http.Client, url string, m message, b64 []byte) (int, error) {
	attrs := m.attributes()
	prefix := fmt.Sprintf(`{"message":{"messageId":"%d-%s-%d","attributes":{"project_id":%q,"replay_id":%q,"segment_id":%q},"data":"`,
		m.id.ProjectID, m.id.ReplayID, m.id.SegmentID, attrs["project_id"], attrs["replay_id"], attrs["segment_id"])
	suffix := `"},"subscription":"projects/` + pubsubProject + `/subscriptions/load"}`
	body := io.MultiReader(bytes.NewReader([]byte(prefix)), bytes.NewReader(b64), bytes.NewReader([]byte(suffix)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = int64(len(prefix) + len(b64) + len(suffix))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// ingestAll sends msgs through p with workers senders, retrying each
// nack, and records the acks.
func (e *env) ingestAll(ctx context.Context, p *packer.Packer, msgs []message, workers int) {
	work := make(chan message)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				for attempt := 0; attempt < 30 && ctx.Err() == nil; attempt++ {
					if _, err := p.Ingest(ctx, packer.Message{ID: fmt.Sprint(m.id), Data: m.raw, Attributes: m.attributes()}); err == nil {
						e.ack(m.id, m.raw)
						break
					}
					time.Sleep(time.Duration(20*(attempt+1)) * time.Millisecond)
				}
			}
		}()
	}
	for _, m := range msgs {
		work <- m
	}
	close(work)
	wg.Wait()
}

// serveLoad: Serve (a child process, default MAX_INFLIGHT_BYTES) streams
// one replay of 100,000 segments to 80 readers at once; every response is
// exact and Serve's peak RSS stays under the instance's 1 GiB.
func serveLoad(ctx context.Context, e *env, o Options, rep *Report) error {
	sz := sizeOf(o)
	// Seed through Pack itself, in big batches: FLUSH_SEGMENTS 5,000.
	const batch = 5000
	seedStart := time.Now()
	p := packer.New(packer.Config{
		FlushBytes: 64 << 20, FlushSegments: batch, FlushAge: time.Second,
		MaxConcurrency: batch, MaxBufferBytes: 1 << 30, FlushTimeout: 45 * time.Second,
		Limits: segment.Limits{MaxDecompressed: 8 << 20},
	}, e.db, e.clean, e.keyring(time.Hour), countReject{})
	rng := rand.New(rand.NewPCG(8, 8))
	replay := uuid.New()
	msgs := make([]message, sz.serveSegments)
	e.mu.Lock()
	for s := range msgs {
		raw := workload.Segment(rng, s, 1_700_000_000_000+int64(s)*1000, 200)
		msgs[s] = message{id: segment.ID{ProjectID: 1, ReplayID: replay, SegmentID: s, Type: segment.DefaultType}, raw: raw}
		e.unacked[msgs[s].id], e.raws[msgs[s].id] = true, raw
	}
	e.mu.Unlock()
	rep.Published = len(msgs)
	e.ingestAll(ctx, p, msgs, min(batch, len(msgs)))
	p.Close()
	rep.figure("seed_seconds", time.Since(seedStart).Seconds())

	// What every reader must get: NDJSON, one segment per line.
	want := sha256.New()
	wantLen := 0
	for _, m := range msgs {
		line := append(bytes.TrimSpace(m.raw), '\n')
		want.Write(line)
		wantLen += len(line)
	}
	wantSum := want.Sum(nil)

	srv, err := newChild("serve-"+e.name, e.sd.exe, e.sd.dir, map[string]string{
		"FUNCTION_TARGET":       "Serve",
		"DATABASE_URL":          e.dsn,
		"BUCKET":                e.bucket,
		"STORAGE_EMULATOR_HOST": e.sd.gcs.Host(),
		"KMS_KEY":               e.kms.KeyName(),
		"KMS_ENDPOINT":          e.kms.Endpoint(),
		"JWT_SECRET":            chaosSecret,
		"LOG_LEVEL":             "warn",
	})
	if err != nil {
		return err
	}
	if err := srv.start(ctx); err != nil {
		return err
	}
	defer func() {
		srv.stop(10 * time.Second)
		rep.ChildPeakRSSMiB = srv.peakRSSMiB()
		rep.LimitMiB = instanceMemoryMiB
	}()
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	oomed := oomKill(ctx, srv, instanceMemoryMiB, cancel)
	tok, err := auth.Mint(chaosSecret, 1, []string{auth.ScopeRead}, "chaos", time.Hour)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 30 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: sz.serveReaders, DisableCompression: true}}
	url := fmt.Sprintf("%s/v1/projects/1/replays/%s/recording?format=ndjson", srv.url(), replay)
	var exact atomic.Int64
	errs := make(chan error, sz.serveReaders)
	readStart := time.Now()
	var wg sync.WaitGroup
	for range sz.serveReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				errs <- err
				return
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := hc.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			switch {
			case err != nil:
				errs <- fmt.Errorf("read after %d bytes: %w", n, err)
			case resp.StatusCode != http.StatusOK:
				errs <- fmt.Errorf("HTTP %d", resp.StatusCode)
			case n != int64(wantLen) || !bytes.Equal(h.Sum(nil), wantSum):
				errs <- fmt.Errorf("a response of %d bytes differs from the %d recorded", n, wantLen)
			default:
				exact.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	rep.figure("read_seconds", time.Since(readStart).Seconds())
	rep.figure("exact_reads", float64(exact.Load()))
	rep.figure("readers", float64(sz.serveReaders))
	rep.figure("segments", float64(sz.serveSegments))
	if oomed() {
		return fmt.Errorf("serve passed the instance's %d MiB (killed as an OOM would) with %d of %d reads done",
			instanceMemoryMiB, exact.Load(), sz.serveReaders)
	}
	if err := outer.Err(); err != nil {
		return err
	}
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		return fmt.Errorf("%d of %d reads failed: %w", len(all), sz.serveReaders, all[0])
	}
	if !srv.running() {
		return fmt.Errorf("serve died under load:\n%s", srv.logTail())
	}
	return nil
}

// shredLoad: a whole-project shred of 5,000,000 rows (seeded in bulk)
// completes while other projects' batches keep committing.
func shredLoad(ctx context.Context, e *env, o Options, rep *Report) error {
	sz := sizeOf(o)
	const victim = 9
	seedStart := time.Now()
	seeded, err := storetest.SeedProject(ctx, e.db, victim, sz.shredReplays, sz.shredPerReplay)
	if err != nil {
		return err
	}
	if err := e.clean.Create(ctx, seeded.BlobPath, []byte{0}); err != nil {
		return err
	}
	rows := int64(sz.shredReplays * sz.shredPerReplay)
	rep.figure("rows", float64(rows))
	rep.figure("seed_seconds", time.Since(seedStart).Seconds())

	p := e.packer(e.clean, e.keyring(time.Hour))
	defer p.Close()
	done := make(chan struct{})
	var rc store.Receipt
	var shredErr error
	shredStart := time.Now()
	go func() {
		defer close(done)
		rc, shredErr = e.db.ShredProjectLimited(ctx, victim, "chaos", store.ShredLimits{Batch: 5000})
	}()
	flushes0 := p.Stats().Flushes.Load()
	small := Options{Replays: 1, SegmentsPerReplay: 40}
	var worst time.Duration
	for k := int64(0); ; k++ {
		select {
		case <-done:
		default:
			t := time.Now()
			e.publish(ctx, p, 100+k, small, uint64(k), rep)
			worst = max(worst, time.Since(t))
			continue
		}
		break
	}
	shredTime := time.Since(shredStart)
	rep.figure("shred_seconds", shredTime.Seconds())
	rep.figure("batches_committed_meanwhile", float64(p.Stats().Flushes.Load()-flushes0))
	rep.figure("slowest_40_segment_publish_seconds", worst.Seconds())
	if shredErr != nil {
		return shredErr
	}
	// The sweep running meanwhile takes part in the shred (it resumes
	// unfinished receipts), so this call's own count may be short of rows.
	rep.figure("rows_shredded_by_request", float64(rc.SegmentsShredded))
	if !rc.Complete {
		return fmt.Errorf("shred receipt incomplete after %d rows", rc.SegmentsShredded)
	}
	left, err := storetest.ProjectSegments(ctx, e.db, victim)
	if err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("%d rows of the shredded project left", left)
	}
	// A sample of the shredded replays is checked like any other (no
	// rows, Serve answers 410).
	for _, r := range seeded.Replays[:min(20, len(seeded.Replays))] {
		e.shredded[r] = true
		e.seeded = append(e.seeded, replayKey{victim, r})
	}
	return nil
}
