// Package chaos runs Pack, Serve and Shred against real local stand-ins
// (PostgreSQL, fake-gcs-server behind a fault-injecting proxy, the local
// KMS server) under injected faults, and checks after every scenario that
// every acked segment reads back byte for byte exactly once, that nothing
// unacked is half visible, and that nothing shredded is readable.
package chaos

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/api/option"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/functions/serve"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// Options shape a run.
type Options struct {
	// Replays and SegmentsPerReplay size each scenario's workload.
	Replays, SegmentsPerReplay int
	// FaultRate is the share of eligible storage requests that fail.
	FaultRate float64
	// Kills is how many times a crash scenario kills Pack (or restarts
	// PostgreSQL).
	Kills int
	// Load runs the load scenarios (memory bounds at full size) instead of
	// the fault scenarios; Quick runs a scaled-down form of each load
	// scenario after the fault scenarios.
	Load, Quick bool
	// Only runs the scenarios whose name contains it (all when empty).
	Only string
	// Exe is the replayvault-dev executable the child processes run
	// (`function`); empty: this program.
	Exe string
}

// Quick is the CI form: small workloads, every scenario.
var Quick = Options{Replays: 6, SegmentsPerReplay: 20, FaultRate: 0.3, Kills: 2, Quick: true}

// Full is the default form.
var Full = Options{Replays: 40, SegmentsPerReplay: 50, FaultRate: 0.3, Kills: 5}

// Report is one scenario's outcome.
type Report struct {
	Scenario    string  `json:"scenario"`
	Published   int     `json:"published"`
	Acked       int     `json:"acked"`
	Readable    int     `json:"readable"`
	Lost        int     `json:"lost"`
	Duplicated  int     `json:"duplicated"`
	HalfVisible int     `json:"half_visible"`
	Shredded    int     `json:"shredded_replays"`
	Faults      int64   `json:"faults_injected"`
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	DurationMS  int64   `json:"duration_ms"`
	Pass        bool    `json:"pass"`
	Detail      string  `json:"detail,omitempty"`

	// Crash scenarios: Pack runs as a child process behind the Pub/Sub
	// emulator's push subscription. Kills counts the SIGKILLs (or
	// PostgreSQL restarts) that hit their window; Deliveries the pushes
	// the emulator made (redeliveries included).
	Kills      int   `json:"kills,omitempty"`
	Deliveries int64 `json:"deliveries,omitempty"`
	// ChildPeakRSSMiB is the largest peak RSS of the process under test
	// (Pack or Serve as a child process); LimitMiB the memory it must stay
	// under (the deployed instance's), when the scenario bounds it.
	ChildPeakRSSMiB float64 `json:"child_peak_rss_mib,omitempty"`
	LimitMiB        float64 `json:"limit_mib,omitempty"`
	// Overloaded counts 429 answers (load shed instead of memory).
	Overloaded int64 `json:"overloaded_429,omitempty"`
	// Sweeps ran throughout; OrphansSwept objects without a blob row they
	// deleted; OrphansLeft are objects still without one after the grace
	// and a final sweep (must be 0).
	Sweeps        int64 `json:"sweeps"`
	SweepFailures int64 `json:"sweep_failures"`
	OrphansSwept  int64 `json:"orphans_swept"`
	OrphansLeft   int   `json:"orphans_left"`
	// Figures of the load scenarios (rows shredded, reads, batches
	// committed meanwhile), by name.
	Figures map[string]float64 `json:"figures,omitempty"`
}

type scenario struct {
	name string
	run  func(ctx context.Context, e *env, o Options, rep *Report) error
	// needs says what the scenario needs beyond the in-process stand-ins.
	needs need
	// grace is the sweeper's ORPHAN_GRACE (0: orphanGrace): longer where
	// Pack runs with its deployed timeouts, which a flush may use up
	// under load.
	grace time.Duration
}

type need int

const (
	needPubSub need = 1 << iota // the Pub/Sub emulator and child processes
)

var scenarios = []scenario{
	{"gcs-faults-pack", gcsFaultsPack, 0, 0},
	{"gcs-faults-serve", gcsFaultsServe, 0, 0},
	{"kms-hang-at-rotation", kmsHangAtRotation, 0, 0},
	{"db-answers-cut", dbAnswersCut, 0, 0},
	{"shred-under-load", shredUnderLoad, 0, 0},
	{"kill-pack-before-upload", killBeforeUpload, needPubSub, 0},
	{"kill-pack-after-upload", killAfterUpload, needPubSub, 0},
	{"kill-pack-after-commit", killAfterCommit, needPubSub, 0},
	{"postgres-restart-mid-commit", postgresRestart, needPubSub, 0},
}

// standins are the local dependencies every scenario shares; each
// scenario has its own database and bucket on them.
type standins struct {
	dir    string
	exe    string
	pg     *testenv.Postgres
	gcs    *testenv.GCS
	kms    *testenv.KMS
	pubsub *testenv.PubSub // nil until a scenario needs it
}

// Run runs the scenarios in order, each on a fresh database and bucket.
func Run(ctx context.Context, o Options) ([]Report, error) {
	dir, err := os.MkdirTemp("", "replayvault-chaos-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// PostgreSQL runs as an unprivileged user when we are root.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	sd := &standins{dir: dir, exe: o.Exe}
	if sd.exe == "" {
		if sd.exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	if sd.pg, err = testenv.StartPostgres(ctx, dir+"/pg"); err != nil {
		return nil, err
	}
	defer sd.pg.Stop()
	if sd.gcs, err = testenv.StartGCS(""); err != nil {
		return nil, err
	}
	defer sd.gcs.Stop()
	if sd.kms, err = testenv.StartKMS(); err != nil {
		return nil, err
	}
	defer sd.kms.Stop()
	defer func() {
		if sd.pubsub != nil {
			sd.pubsub.Stop()
		}
	}()

	var list []scenario
	if !o.Load {
		list = append(list, scenarios...)
	}
	if o.Load || o.Quick {
		list = append(list, loadScenarios...)
	}
	var reports []Report
	for i, sc := range list {
		if o.Only != "" && !strings.Contains(sc.name, o.Only) {
			continue
		}
		if sc.needs&needPubSub != 0 && sd.pubsub == nil {
			if sd.pubsub, err = testenv.StartPubSub(ctx, dir+"/pubsub", pubsubProject); err != nil {
				return reports, err
			}
		}
		rep := Report{Scenario: sc.name}
		resetPeakRSS()
		start := time.Now()
		err := func() error {
			e, err := newEnv(ctx, sd, fmt.Sprintf("chaos_%d", i))
			if err != nil {
				return err
			}
			defer e.close()
			defer func() { rep.Faults += e.proxy.injectedTotal() }()
			e.grace = cmp.Or(sc.grace, orphanGrace)
			sw := e.startSweeper(ctx)
			runErr := sc.run(ctx, e, o, &rep)
			if err := e.finish(ctx, sw, &rep); err != nil || runErr != nil {
				return errors.Join(runErr, err)
			}
			return e.check(ctx, &rep)
		}()
		rep.DurationMS = time.Since(start).Milliseconds()
		rep.PeakRSSMiB = peakRSSMiB()
		if err != nil {
			rep.Detail = err.Error()
		}
		rep.Pass = err == nil && rep.Lost == 0 && rep.Duplicated == 0 && rep.HalfVisible == 0 &&
			rep.Acked == rep.Published && rep.OrphansLeft == 0 &&
			(rep.LimitMiB == 0 || rep.ChildPeakRSSMiB < rep.LimitMiB)
		reports = append(reports, rep)
	}
	return reports, nil
}

// pubsubProject is the emulator's project.
const pubsubProject = "chaos"

// env is one scenario's system: its own database and bucket, the shared
// stand-ins, a storage client through the fault proxy and a clean one for
// checks.
type env struct {
	sd      *standins
	name    string
	bucket  string
	db      *store.DB
	dsn     string
	kms     *testenv.KMS
	proxy   *faultProxy
	gate    *uploadGate
	gcsHost string // host:port of the gate, for STORAGE_EMULATOR_HOST
	faulty  blob.Store
	clean   blob.Store
	wrap    *crypt.KMS
	closes  []func()

	// minOrphans is how many orphans the scenario made on purpose (the
	// sweep must have deleted at least that many).
	minOrphans int
	// grace is the sweeper's ORPHAN_GRACE.
	grace time.Duration
	// seeded are replays written around Pack (bulk seeding) that the
	// check covers too.
	seeded []replayKey

	mu       sync.Mutex
	raws     map[segment.ID][]byte // every published segment -> raw JSON
	acked    map[segment.ID][]byte // acked segment -> raw JSON
	unacked  map[segment.ID]bool   // published, never acked
	shredded map[uuid.UUID]bool
}

func newEnv(ctx context.Context, sd *standins, name string) (*env, error) {
	e := &env{sd: sd, name: name, bucket: strings.ReplaceAll("rv-"+name, "_", "-"), kms: sd.kms,
		raws: map[segment.ID][]byte{}, acked: map[segment.ID][]byte{}, unacked: map[segment.ID]bool{}, shredded: map[uuid.UUID]bool{}}
	sd.gcs.Server().CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: e.bucket})
	if err := sd.pg.CreateDatabase(ctx, name, ""); err != nil {
		return nil, err
	}
	dsn := sd.pg.DSN(name)
	e.dsn = dsn
	if err := store.Migrate(ctx, dsn); err != nil {
		return nil, err
	}
	// The cluster trades durability for speed; with synchronous_commit on
	// an acknowledged commit survives a crash of PostgreSQL (not of the
	// machine), as in production.
	if err := execSQL(ctx, dsn, "ALTER DATABASE "+name+" SET synchronous_commit = on"); err != nil {
		return nil, err
	}
	db, err := store.OpenURL(ctx, dsn)
	if err != nil {
		return nil, err
	}
	e.db = db
	e.closes = append(e.closes, db.Close)
	proxy, err := newFaultProxy(sd.gcs.URL())
	if err != nil {
		return nil, err
	}
	e.proxy = proxy
	e.gate = &uploadGate{next: proxy}
	hs := httptest.NewServer(e.gate)
	e.gcsHost = strings.TrimPrefix(hs.URL, "http://")
	e.closes = append(e.closes, hs.Close)
	fc, err := blob.NewGCSClient(ctx, option.WithEndpoint(hs.URL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		return nil, err
	}
	e.closes = append(e.closes, func() { fc.Close() })
	e.faulty = blob.NewGCS(fc, e.bucket, 5*time.Second)
	cc, err := sd.gcs.Client(ctx)
	if err != nil {
		return nil, err
	}
	e.closes = append(e.closes, func() { cc.Close() })
	e.clean = blob.NewGCS(cc, e.bucket, 30*time.Second)
	kc, err := crypt.NewKMSClient(ctx, sd.kms.Endpoint())
	if err != nil {
		return nil, err
	}
	e.closes = append(e.closes, func() { kc.Close() })
	e.wrap = crypt.NewKMS(kc, sd.kms.KeyName(), 2*time.Second)
	return e, nil
}

func (e *env) close() {
	for i := len(e.closes) - 1; i >= 0; i-- {
		e.closes[i]()
	}
}

func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

func (e *env) keyring(rotate time.Duration) *crypt.Keyring {
	return crypt.NewKeyring(e.wrap, func(ctx context.Context, k *crypt.KEK) error {
		return e.db.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped)
	}, rotate)
}

func (e *env) packer(blobs blob.Store, keys *crypt.Keyring) *packer.Packer {
	return e.packerOn(e.db, blobs, keys)
}

func (e *env) packerOn(db *store.DB, blobs blob.Store, keys *crypt.Keyring) *packer.Packer {
	cfg := packer.Config{
		FlushBytes: 4 << 20, FlushSegments: 10, FlushAge: 50 * time.Millisecond,
		MaxConcurrency: 1000, MaxBufferBytes: 256 << 20, FlushTimeout: flushTimeout,
		Limits: segment.Limits{MaxDecompressed: 8 << 20},
	}
	return packer.New(cfg, db, blobs, keys, countReject{})
}

// countReject is the reject topic: the workload is valid, so any reject
// is a failure of the scenario.
type countReject struct{}

func (countReject) Reject(context.Context, map[string]string, []byte, string) error {
	return errors.New("chaos: a valid segment was rejected")
}

// message is one segment of a workload.
type message struct {
	id  segment.ID
	raw []byte
}

func (m message) attributes() map[string]string {
	return map[string]string{
		"project_id": strconv.FormatInt(m.id.ProjectID, 10),
		"replay_id":  m.id.ReplayID.String(),
		"segment_id": strconv.Itoa(m.id.SegmentID),
	}
}

// workload returns o.Replays new replays of o.SegmentsPerReplay segments
// each in project, all recorded as unacked until acked.
func (e *env) workload(project int64, o Options, seed uint64) ([]uuid.UUID, []message) {
	rng := rand.New(rand.NewPCG(seed, 99))
	var msgs []message
	replays := make([]uuid.UUID, o.Replays)
	e.mu.Lock()
	defer e.mu.Unlock()
	for r := range replays {
		replays[r] = uuid.New()
		for s := range o.SegmentsPerReplay {
			raw := workload.Segment(rng, s, 1_700_000_000_000+int64(s)*1000, 1500+rng.IntN(3000))
			m := message{segment.ID{ProjectID: project, ReplayID: replays[r], SegmentID: s, Type: segment.DefaultType}, raw}
			msgs = append(msgs, m)
			e.unacked[m.id] = true
			e.raws[m.id] = raw
		}
	}
	return replays, msgs
}

// unackedCount is how many published messages are not acked yet.
func (e *env) unackedCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.unacked)
}

// ack records that Pack acked a message.
func (e *env) ack(id segment.ID, raw []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if raw == nil {
		raw = e.raws[id]
	}
	e.acked[id] = raw
	delete(e.unacked, id)
}

// publish sends the workload through p as Pub/Sub would: every nacked
// message is redelivered (after a short backoff) until acked or until it
// has been tried attempts times.
func (e *env) publish(ctx context.Context, p *packer.Packer, project int64, o Options, seed uint64, rep *Report) []uuid.UUID {
	replays, msgs := e.workload(project, o, seed)
	rep.Published += len(msgs)
	e.ingestAll(ctx, p, msgs, 16)
	return replays
}

// check is the invariant: every acked segment has exactly one row and reads
// back through Serve (clean storage, fresh KEK cache) to its bytes, in
// order, exactly once; no row exists for a segment never acked; shredded
// replays have no rows and Serve answers 410 for them.
func (e *env) check(ctx context.Context, rep *Report) error {
	rep.Acked = len(e.acked)
	rep.Shredded = len(e.shredded)
	byReplay := map[replayKey][]int{} // acked segment ids
	for id := range e.acked {
		k := replayKey{id.ProjectID, id.ReplayID}
		byReplay[k] = append(byReplay[k], id.SegmentID)
	}
	for id := range e.unacked {
		k := replayKey{id.ProjectID, id.ReplayID}
		if _, ok := byReplay[k]; !ok {
			byReplay[k] = nil
		}
	}
	for _, k := range e.seeded {
		if _, ok := byReplay[k]; !ok {
			byReplay[k] = nil
		}
	}
	seen := map[segment.ID]int{}
	for k := range byReplay {
		meta, rows, err := e.db.ReplaySegments(ctx, k.project, k.replay, segment.DefaultType, 0, 1<<30)
		if err != nil {
			return fmt.Errorf("read rows of %s: %w", k.replay, err)
		}
		if meta != nil {
			if _, gone := meta.Shredded(); gone != e.shredded[k.replay] {
				return fmt.Errorf("replay %s: shredded %v, want %v", k.replay, gone, e.shredded[k.replay])
			}
		}
		for _, row := range rows {
			seen[row.ID]++
			if e.shredded[k.replay] {
				rep.HalfVisible++ // a shredded replay's row
				continue
			}
			if _, ok := e.acked[row.ID]; !ok {
				rep.HalfVisible++
			}
		}
	}
	for id := range e.acked {
		switch n := seen[id]; {
		case e.shredded[id.ReplayID]:
		case n == 0:
			rep.Lost++
		case n > 1:
			rep.Duplicated += n - 1
		}
	}
	readable, err := e.readThroughServe(ctx, byReplay)
	if err != nil {
		return err
	}
	rep.Readable = readable
	live := 0
	for id := range e.acked {
		if !e.shredded[id.ReplayID] {
			live++
		}
	}
	if missing := live - rep.Readable; missing > rep.Lost {
		rep.Lost = missing
	}
	return nil
}

type replayKey struct {
	project int64
	replay  uuid.UUID
}

const chaosSecret = "chaos-secret-0123456789abcdef-0123456789"

// readThroughServe reads every replay through Serve (NDJSON: one line per
// segment) and counts the acked segments that come back byte for byte, in
// order; a shredded replay must answer 410.
func (e *env) readThroughServe(ctx context.Context, byReplay map[replayKey][]int) (int, error) {
	srv := serve.New(serve.Config{RowPage: 50}, e.db, e.clean, crypt.NewKEKCache(e.wrap, e.db.WrappedKEK, 64, time.Minute),
		auth.NewVerifier(chaosSecret, auth.Policy{}))
	hs := httptest.NewServer(srv)
	defer hs.Close()
	type job struct {
		k    replayKey
		segs []int
	}
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		readable int
		firstErr error
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				n, err := e.readReplay(ctx, hs.URL, j.k, j.segs)
				mu.Lock()
				readable += n
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for k, segs := range byReplay {
		jobs <- job{k, segs}
	}
	close(jobs)
	wg.Wait()
	return readable, firstErr
}

// readReplay reads one replay through Serve and counts its acked segments
// that come back exactly, in order.
func (e *env) readReplay(ctx context.Context, base string, k replayKey, segs []int) (int, error) {
	tok, err := auth.Mint(chaosSecret, k.project, []string{auth.ScopeRead}, "chaos", time.Hour)
	if err != nil {
		return 0, err
	}
	body, status, err := fetch(ctx, fmt.Sprintf("%s/v1/projects/%d/replays/%s/recording?format=ndjson", base, k.project, k.replay), tok)
	if err != nil {
		return 0, fmt.Errorf("serve %s: %w", k.replay, err)
	}
	if e.shredded[k.replay] {
		if status != http.StatusGone {
			return 0, fmt.Errorf("serve shredded replay %s: HTTP %d, want 410", k.replay, status)
		}
		return 0, nil
	}
	if len(segs) == 0 {
		return 0, nil // nothing acked: check makes sure no row exists
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("serve %s: HTTP %d: %.200s", k.replay, status, body)
	}
	slices.Sort(segs)
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	readable := 0
	for i, s := range segs {
		raw := e.acked[segment.ID{ProjectID: k.project, ReplayID: k.replay, SegmentID: s, Type: segment.DefaultType}]
		if i < len(lines) && bytes.Equal(lines[i], bytes.TrimSpace(raw)) {
			readable++
		}
	}
	return readable, nil
}

// gcsFaultsPack: uploads fail (503, resets, slow answers) while Pack packs;
// Pub/Sub redelivers every nack.
func gcsFaultsPack(ctx context.Context, e *env, o Options, rep *Report) error {
	e.proxy.set(o.FaultRate, isUpload)
	p := e.packer(e.faulty, e.keyring(time.Hour))
	e.publish(ctx, p, 1, o, 1, rep)
	p.Close()
	e.proxy.set(0, nil)
	return nil
}

// gcsFaultsServe: ranged reads fail (503, resets, slow and truncated
// bodies) while Serve streams every replay; a response either completes
// with exactly the recorded events or visibly fails, never silently short.
func gcsFaultsServe(ctx context.Context, e *env, o Options, rep *Report) error {
	p := e.packer(e.clean, e.keyring(time.Hour))
	replays := e.publish(ctx, p, 1, o, 2, rep)
	p.Close()
	const secret = chaosSecret
	srv := serve.New(serve.Config{CoalesceGapBytes: 0, RowPage: 7}, // one ranged read per segment: many chances to fail
		e.db, e.faulty, crypt.NewKEKCache(e.wrap, e.db.WrappedKEK, 64, time.Minute), auth.NewVerifier(secret, auth.Policy{}))
	hs := httptest.NewServer(srv)
	defer hs.Close()
	tok, err := auth.Mint(secret, 1, []string{auth.ScopeRead}, "chaos", time.Hour)
	if err != nil {
		return err
	}
	// A response needs every one of its ranged reads to succeed; a third
	// of the rate still fails most first attempts of a long replay.
	e.proxy.set(o.FaultRate/3, isRead)
	defer e.proxy.set(0, nil)
	for _, r := range replays {
		var want bytes.Buffer
		want.WriteString("[")
		first := true
		for s := range o.SegmentsPerReplay {
			raw := e.acked[segment.ID{ProjectID: 1, ReplayID: r, SegmentID: s, Type: segment.DefaultType}]
			inner := bytes.TrimSpace(raw)
			inner = bytes.TrimSpace(inner[1 : len(inner)-1])
			if len(inner) == 0 {
				continue
			}
			if !first {
				want.WriteString(",")
			}
			first = false
			want.Write(inner)
		}
		want.WriteString("]\n")
		served := false
		var last string
		for attempt := 0; attempt < 100 && !served; attempt++ {
			body, status, err := fetch(ctx, fmt.Sprintf("%s/v1/projects/1/replays/%s/recording", hs.URL, r), tok)
			switch {
			case err != nil || status != http.StatusOK:
				// A visible failure: the reader retries.
				last = fmt.Sprintf("status %d, %v, %.200s", status, err, body)
			case !bytes.Equal(body, want.Bytes()):
				return fmt.Errorf("replay %s: a complete 200 response with wrong content (%d bytes, want %d)", r, len(body), want.Len())
			default:
				served = true
			}
		}
		if !served {
			return fmt.Errorf("replay %s: not served in 100 attempts; last: %s", r, last)
		}
	}
	return nil
}

func fetch(ctx context.Context, url, tok string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return b.Bytes(), resp.StatusCode, err
}

// kmsHangAtRotation: KMS stops answering while rotation is due on every
// segment; Pack keeps sealing with the KEK it holds.
func kmsHangAtRotation(ctx context.Context, e *env, o Options, rep *Report) error {
	keys := e.keyring(time.Millisecond)
	if _, err := keys.Current(ctx); err != nil {
		return err
	}
	e.kms.Hang(true)
	p := e.packer(e.clean, keys)
	e.publish(ctx, p, 1, o, 3, rep)
	p.Close()
	e.kms.Hang(false)
	return nil
}

// shredUnderLoad: whole-project and replay shreds run while another
// project's segments are packed; nothing shredded stays readable.
func shredUnderLoad(ctx context.Context, e *env, o Options, rep *Report) error {
	p := e.packer(e.clean, e.keyring(time.Hour))
	defer p.Close()
	victims := e.publish(ctx, p, 7, o, 4, rep)
	if _, err := e.db.ShredReplays(ctx, 7, victims[:1], "chaos"); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var shredErr error
	go func() {
		defer wg.Done()
		_, shredErr = e.db.ShredProjectLimited(ctx, 7, "chaos", store.ShredLimits{Batch: 7})
	}()
	e.publish(ctx, p, 8, o, 5, rep)
	wg.Wait()
	if shredErr != nil {
		return shredErr
	}
	for _, v := range victims {
		e.shredded[v] = true
	}
	return nil
}

// dbAnswersCut: while Pack packs, a share of PostgreSQL's answers never
// reach it (the connection is cut as the server answers), so some commits
// succeed unbeknownst to Pack; the nacked segments are redelivered and must
// come out as duplicates, never as second rows.
func dbAnswersCut(ctx context.Context, e *env, o Options, rep *Report) error {
	u, err := url.Parse(e.dsn)
	if err != nil {
		return err
	}
	proxy, err := startDBProxy(u.Host)
	if err != nil {
		return err
	}
	defer proxy.close()
	u.Host = proxy.addr()
	db, err := store.OpenURL(ctx, u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	keys := e.keyring(time.Hour)
	if _, err := keys.Current(ctx); err != nil {
		return err
	}
	proxy.set(o.FaultRate / 6)
	p := e.packerOn(db, e.clean, keys)
	e.publish(ctx, p, 1, o, 6, rep)
	p.Close()
	proxy.set(0)
	rep.Faults += proxy.cuts.Load()
	return nil
}
