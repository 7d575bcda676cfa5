package packer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func testConfig() Config {
	return Config{
		FlushBytes:     8 << 20,
		FlushSegments:  1000,
		FlushAge:       200 * time.Millisecond,
		MaxConcurrency: 1000,
		MaxBufferBytes: 256 << 20,
		FlushTimeout:   30 * time.Second,
		Limits:         segment.Limits{MaxDecompressed: 8 << 20},
	}
}

// noReject fails the test if a message that should be valid is rejected.
type noReject struct{ t testing.TB }

func (r noReject) Reject(_ context.Context, attrs map[string]string, _ []byte, reason string) error {
	r.t.Errorf("unexpected reject %s of %v", reason, attrs)
	return nil
}

func newPacker(t *testing.T, d *testenv.Deps, cfg Config, rej Rejecter) *Packer {
	t.Helper()
	if rej == nil {
		rej = noReject{t}
	}
	p := New(cfg, d.DB, d.Blobs, d.Keyring(), rej)
	t.Cleanup(p.Close)
	return p
}

func message(project int64, replay uuid.UUID, seg int, payload []byte) Message {
	return Message{
		ID:   fmt.Sprintf("%s-%d", replay, seg),
		Data: payload,
		Attributes: map[string]string{
			"project_id": strconv.FormatInt(project, 10),
			"replay_id":  replay.String(),
			"segment_id": strconv.Itoa(seg),
		},
	}
}

// row is a stored segment as the read path sees it.
type row struct {
	project         int64
	replay          uuid.UUID
	segID           int
	typ, path, enc  string
	start, stop     int64
	kek             uuid.UUID
	dek             []byte
	events          int
	firstTS, lastTS int64
	hasFull         bool
}

func rows(t *testing.T, d *testenv.Deps) []row {
	t.Helper()
	r, err := d.DB.Pool.Query(context.Background(), `
		SELECT project_id, replay_id, segment_id, type, blob_path, encoding, byte_start, byte_stop, kek_id,
			wrapped_dek, event_count, first_ts, last_ts, has_full_snapshot
		FROM segments ORDER BY project_id, replay_id, segment_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []row
	for r.Next() {
		var x row
		if err := r.Scan(&x.project, &x.replay, &x.segID, &x.typ, &x.path, &x.enc, &x.start, &x.stop, &x.kek,
			&x.dek, &x.events, &x.firstTS, &x.lastTS, &x.hasFull); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// open reads one segment back the way Serve does: ranged read, unwrap,
// decrypt, decompress.
func open(ctx context.Context, d *testenv.Deps, keks *crypt.KEKCache, x row) ([]byte, error) {
	ct, err := d.Blobs.ReadRange(ctx, x.path, x.start, x.stop-x.start)
	if err != nil {
		return nil, err
	}
	kek, err := keks.Get(ctx, x.kek)
	if err != nil {
		return nil, err
	}
	id := segment.ID{ProjectID: x.project, ReplayID: x.replay, SegmentID: x.segID, Type: x.typ}
	pt, err := crypt.Open(kek, id.AAD(), ct, x.dek)
	if err != nil {
		return nil, err
	}
	return segment.Decode(segment.Encoding(x.enc), pt, 64<<20)
}

func count(t *testing.T, d *testenv.Deps, query string, args ...any) int {
	t.Helper()
	var n int
	if err := d.DB.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func objects(t *testing.T, d *testenv.Deps) []string {
	t.Helper()
	var names []string
	if err := d.Blobs.List(context.Background(), "", func(o blob.Object) error {
		names = append(names, o.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestPackGroupsAndReadsBack packs mixed encodings into few objects and
// checks every byte range opens to exactly the original JSON, with its
// metadata recorded, and that KMS was called once for the one KEK.
func TestPackGroupsAndReadsBack(t *testing.T) {
	d := testenv.NewDeps(t)
	cfg := testConfig()
	cfg.FlushSegments = 50
	p := newPacker(t, d, cfg, nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))

	const replays, perReplay = 4, 40
	want := map[string][]byte{}
	var wg sync.WaitGroup
	errs := make(chan error, replays*perReplay)
	for r := range replays {
		id := uuid.New()
		for s := range perReplay {
			raw := workload.Segment(rng, s, 1_700_000_000_000+int64(s)*10_000, 2000+rng.IntN(20000))
			payload := raw
			if s%2 == 1 {
				payload = workload.Gzip(raw)
			}
			want[fmt.Sprintf("%s/%d", id, s)] = raw
			wg.Add(1)
			go func(m Message) {
				defer wg.Done()
				res, err := p.Ingest(ctx, m)
				if err == nil && res != Stored {
					err = fmt.Errorf("%s: result %s, want stored", m.ID, res)
				}
				if err != nil {
					errs <- err
				}
			}(message(int64(100+r), id, s, payload))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	got := rows(t, d)
	if len(got) != replays*perReplay {
		t.Fatalf("segment rows = %d, want %d", len(got), replays*perReplay)
	}
	if n := len(objects(t, d)); n < replays*perReplay/cfg.FlushSegments || n > replays*perReplay/cfg.FlushSegments+4 {
		t.Errorf("objects = %d, want about %d", n, replays*perReplay/cfg.FlushSegments)
	}
	if n := d.KMS.EncryptCalls(); n != 1 {
		t.Errorf("KMS Encrypt calls = %d, want 1 (one KEK)", n)
	}
	keks := d.KEKCache()
	for _, x := range got {
		b, err := open(ctx, d, keks, x)
		if err != nil {
			t.Fatalf("open %s/%d: %v", x.replay, x.segID, err)
		}
		if w := want[fmt.Sprintf("%s/%d", x.replay, x.segID)]; !bytes.Equal(b, w) {
			t.Fatalf("segment %s/%d differs from the original", x.replay, x.segID)
		}
		if x.hasFull != (x.segID == 0) {
			t.Errorf("segment %d has_full_snapshot = %v", x.segID, x.hasFull)
		}
		if x.events == 0 || x.firstTS < 1_700_000_000_000 || x.lastTS < x.firstTS {
			t.Errorf("segment %d metadata: events %d, ts %d..%d", x.segID, x.events, x.firstTS, x.lastTS)
		}
	}
	if n := count(t, d, `SELECT count(*) FROM replays WHERE segment_count = $1`, perReplay); n != replays {
		t.Errorf("replays with %d segments = %d, want %d", perReplay, n, replays)
	}
}

// TestDuplicates delivers the same message twice in one batch and again in
// a later batch: one row, identical read-back.
func TestDuplicates(t *testing.T) {
	d := testenv.NewDeps(t)
	p := newPacker(t, d, testConfig(), nil)
	ctx := context.Background()
	replay := uuid.New()
	raw := workload.Segment(rand.New(rand.NewPCG(3, 4)), 0, 1_700_000_000_000, 5000)
	m := message(7, replay, 0, raw)

	var wg sync.WaitGroup
	results := make([]Result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := p.Ingest(ctx, m)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	if !((results[0] == Stored && results[1] == Duplicate) || (results[0] == Duplicate && results[1] == Stored)) {
		t.Errorf("same batch: results %v, want one stored and one duplicate", results)
	}
	if r, err := p.Ingest(ctx, m); err != nil || r != Duplicate {
		t.Errorf("later batch: result %v, %v; want duplicate", r, err)
	}
	if objs := objects(t, d); len(objs) != 1 {
		t.Errorf("objects = %v, want 1: a batch of only redeliveries writes nothing", objs)
	}
	got := rows(t, d)
	if len(got) != 1 {
		t.Fatalf("rows = %d, want 1", len(got))
	}
	b, err := open(ctx, d, d.KEKCache(), got[0])
	if err != nil || !bytes.Equal(b, raw) {
		t.Fatalf("read back: %v, equal=%v", err, bytes.Equal(b, raw))
	}
	if n := count(t, d, `SELECT segment_count FROM replays WHERE replay_id = $1`, replay); n != 1 {
		t.Errorf("replay segment_count = %d, want 1", n)
	}
}

// TestUploadFailureNacksBatch: a GCS write failure fails every request of
// the batch and writes no rows.
func TestUploadFailureNacksBatch(t *testing.T) {
	d := testenv.NewDeps(t)
	cfg := testConfig()
	cfg.FlushTimeout = 5 * time.Second
	p := newPacker(t, d, cfg, nil)
	d.GCS.FailAllUploads(true)
	ctx := context.Background()
	replay := uuid.New()
	rng := rand.New(rand.NewPCG(5, 6))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed int
	for s := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Ingest(ctx, message(1, replay, s, workload.Segment(rng, s, 1_700_000_000_000, 1000)))
			if err != nil {
				if st := httpStatus(err); st < 500 {
					t.Errorf("status %d for %v, want 5xx", st, err)
				}
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed != 20 {
		t.Errorf("failed requests = %d, want 20", failed)
	}
	if n := count(t, d, `SELECT count(*) FROM segments`); n != 0 {
		t.Errorf("segment rows = %d, want 0", n)
	}
	if n := count(t, d, `SELECT count(*) FROM blobs`); n != 0 {
		t.Errorf("blob rows = %d, want 0", n)
	}
}

// TestCommitFailureLeavesIdentifiableOrphan: the upload succeeds, the
// transaction fails: every request fails and the object has no blob row.
func TestCommitFailureLeavesIdentifiableOrphan(t *testing.T) {
	d := testenv.NewDeps(t)
	p := newPacker(t, d, testConfig(), nil)
	ctx := context.Background()
	if _, err := d.DB.Pool.Exec(ctx, `
		CREATE FUNCTION fail_segments() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
		CREATE TRIGGER fail_segments BEFORE INSERT ON segments FOR EACH ROW EXECUTE FUNCTION fail_segments();`); err != nil {
		t.Fatal(err)
	}
	replay := uuid.New()
	rng := rand.New(rand.NewPCG(7, 8))
	var wg sync.WaitGroup
	for s := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Ingest(ctx, message(1, replay, s, workload.Segment(rng, s, 1_700_000_000_000, 1000))); err == nil {
				t.Errorf("segment %d acked although its transaction failed", s)
			} else if st := httpStatus(err); st < 500 {
				t.Errorf("status %d, want 5xx", st)
			}
		}()
	}
	wg.Wait()
	objs := objects(t, d)
	if len(objs) != 1 {
		t.Fatalf("objects = %v, want the one orphan", objs)
	}
	if n := count(t, d, `SELECT count(*) FROM blobs WHERE path = $1`, objs[0]); n != 0 {
		t.Errorf("orphan %s has a blob row", objs[0])
	}
	if n := count(t, d, `SELECT count(*) FROM segments`) + count(t, d, `SELECT count(*) FROM replays`); n != 0 {
		t.Errorf("rows written = %d, want 0", n)
	}
}

// TestTamperedObjectFailsIntegrity flips one byte inside a stored segment.
func TestTamperedObjectFailsIntegrity(t *testing.T) {
	d := testenv.NewDeps(t)
	p := newPacker(t, d, testConfig(), nil)
	ctx := context.Background()
	replay := uuid.New()
	rng := rand.New(rand.NewPCG(9, 10))
	for s := range 3 {
		if _, err := p.Ingest(ctx, message(1, replay, s, workload.Segment(rng, s, 1_700_000_000_000, 3000))); err != nil {
			t.Fatal(err)
		}
	}
	got := rows(t, d)
	victim := got[1]
	obj, err := d.GCS.Server().GetObject(testenv.TestBucket, victim.path)
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Clone(obj.Content)
	content[(victim.start+victim.stop)/2] ^= 0x01
	obj.Content = content
	d.GCS.Server().CreateObject(obj)

	keks := d.KEKCache()
	for _, x := range got {
		_, err := open(ctx, d, keks, x)
		if x.segID == victim.segID {
			if !errors.Is(err, crypt.ErrIntegrity) {
				t.Errorf("tampered segment: err = %v, want ErrIntegrity", err)
			}
		} else if err != nil {
			t.Errorf("untouched segment %d: %v", x.segID, err)
		}
	}
}

// TestShreddedReplayTakesNoSegments: a tombstoned replay or project acks new
// segments without storing them.
func TestShreddedReplayTakesNoSegments(t *testing.T) {
	d := testenv.NewDeps(t)
	p := newPacker(t, d, testConfig(), nil)
	ctx := context.Background()
	dead, live := uuid.New(), uuid.New()
	if _, err := d.DB.Pool.Exec(ctx, `
		INSERT INTO replays (project_id, replay_id, retention_days, first_seen, last_seen, deleted_at)
		VALUES (1, $1, 90, now(), now(), now())`, dead); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DB.Pool.Exec(ctx, `INSERT INTO projects (project_id, deleted_at) VALUES (2, now())`); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	tests := []struct {
		name    string
		project int64
		replay  uuid.UUID
		want    Result
	}{
		{"tombstoned replay", 1, dead, Shredded},
		{"tombstoned project", 2, live, Shredded},
		{"live replay", 1, live, Stored},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := p.Ingest(ctx, message(tc.project, tc.replay, 0, workload.Segment(rng, 0, 1_700_000_000_000, 1000)))
			if err != nil || r != tc.want {
				t.Errorf("result %v, %v; want %v", r, err, tc.want)
			}
		})
	}
	if n := count(t, d, `SELECT count(*) FROM segments`); n != 1 {
		t.Errorf("segment rows = %d, want 1 (the live replay)", n)
	}
}

// TestBufferBound: with a buffer smaller than two segments, a second
// segment is refused with 429 while the first waits for its flush.
func TestBufferBound(t *testing.T) {
	d := testenv.NewDeps(t)
	cfg := testConfig()
	cfg.MaxBufferBytes = 2000 // each segment seals to about 1,300 bytes
	cfg.FlushAge = 2 * time.Second
	p := newPacker(t, d, cfg, nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(13, 14))
	first := make(chan error, 1)
	go func() {
		_, err := p.Ingest(ctx, message(1, uuid.New(), 0, workload.Segment(rng, 1, 1_700_000_000_000, 3000)))
		first <- err
	}()
	time.Sleep(100 * time.Millisecond)
	_, err := p.Ingest(ctx, message(1, uuid.New(), 0, workload.Segment(rand.New(rand.NewPCG(1, 1)), 1, 1_700_000_000_000, 3000)))
	if !errors.Is(err, ErrOverloaded) || httpStatus(err) != 429 {
		t.Errorf("second segment: %v (status %d), want ErrOverloaded / 429", err, httpStatus(err))
	}
	if err := <-first; err != nil {
		t.Errorf("first segment: %v", err)
	}
}

// httpStatus is the status Pack answers Pub/Sub with for err.
func httpStatus(err error) int {
	status, _ := derrors.ToStatus(err)
	return status
}
