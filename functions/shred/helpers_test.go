package shred

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	testSecret = "shred-test-secret-0123456789abcdef"
	sweepToken = "sweep-test-token"
)

// env is a Shred service and a packer on one set of real dependencies.
type env struct {
	d      *testenv.Deps
	svc    *Service
	h      http.Handler
	packer *packer.Packer
	keks   *crypt.KEKCache
}

func testConfig() Config {
	return Config{
		SweepToken:        sweepToken,
		OrphanGrace:       time.Hour,
		SweepBatch:        1000,
		SweepBudget:       time.Minute,
		OrphanLookback:    DefaultOrphanLookback,
		DeleteParallelism: 4,
		CORSOrigins:       []string{"https://app.example.test"},
	}
}

// newEnv starts the dependencies, a Shred service with cfg and a packer
// whose batches flush after flushAge.
func newEnv(t *testing.T, cfg Config, flushAge time.Duration) *env {
	t.Helper()
	return newEnvTranscoding(t, cfg, flushAge, 90)
}

// newEnvTranscoding is newEnv with a packer that transcodes segments kept
// at least transcodeMin days to zstd. A Shred service whose compaction
// re-encodes gets the KEK cache.
func newEnvTranscoding(t *testing.T, cfg Config, flushAge time.Duration, transcodeMin int) *env {
	t.Helper()
	return newEnvPacking(t, cfg, envPacker(flushAge, transcodeMin))
}

// envPacker is the configuration of newEnvTranscoding's packer.
func envPacker(flushAge time.Duration, transcodeMin int) packer.Config {
	return packer.Config{
		FlushBytes:     8 << 20,
		FlushSegments:  1000,
		FlushAge:       flushAge,
		MaxConcurrency: 1000,
		MaxBufferBytes: 64 << 20,
		FlushTimeout:   30 * time.Second,
		Limits:         segment.Limits{MaxDecompressed: 8 << 20},
		// Transcode as production does for the default 90-day class, so
		// shreds race the same Pack work.
		TranscodeMinRetention: transcodeMin,
		Level:                 segment.LevelBetter,
	}
}

// newEnvPacking is newEnv with a packer configured as pc.
func newEnvPacking(t *testing.T, cfg Config, pc packer.Config) *env {
	t.Helper()
	d := testenv.NewDeps(t)
	p := packer.New(pc, d.DB, d.Blobs, d.Keyring(), noReject{t})
	t.Cleanup(p.Close)
	var opts []Option
	if cfg.CompactLevel != 0 {
		opts = append(opts, WithKEKs(d.KEKCache()))
	}
	svc := New(cfg, d.DB, d.Blobs, auth.NewVerifier(testSecret, auth.Policy{}), opts...)
	return &env{d: d, svc: svc, h: svc.Handler(), packer: p, keks: d.KEKCache()}
}

type noReject struct{ t testing.TB }

func (r noReject) Reject(_ context.Context, attrs map[string]string, _ []byte, reason string) error {
	r.t.Errorf("unexpected reject %s of %v", reason, attrs)
	return nil
}

func token(t testing.TB, project int64, scopes ...string) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, project, scopes, "tester@example.test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// response is a decoded JSON answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) errMessage() string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func (r response) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (e *env) do(t testing.TB, method, path, tok, body string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	res := response{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("%s %s: %d with a body that is not a JSON object: %q", method, path, rec.Code, rec.Body.String())
		}
	}
	return res
}

// replay is one recording: its identity and the original segment payloads.
type replay struct {
	project int64
	id      uuid.UUID
	raw     [][]byte
	// mixed sends segment s gzip, zlib, plain or zstd by s mod 4, as
	// different SDKs do; otherwise every segment is sent plain.
	mixed bool
}

func newReplay(rng *rand.Rand, project int64, segments int) *replay {
	r := &replay{project: project, id: uuid.New()}
	for s := range segments {
		r.raw = append(r.raw, workload.Segment(rng, s, 1_700_000_000_000+int64(s)*10_000, 500+rng.IntN(2000)))
	}
	return r
}

func (r *replay) message(seg int) packer.Message {
	return packer.Message{
		ID:   fmt.Sprintf("%s-%d", r.id, seg),
		Data: r.payload(seg),
		Attributes: map[string]string{
			"project_id": strconv.FormatInt(r.project, 10),
			"replay_id":  r.id.String(),
			"segment_id": strconv.Itoa(seg),
		},
	}
}

// payload is segment seg as sent (see mixed).
func (r *replay) payload(seg int) []byte {
	raw := r.raw[seg]
	if !r.mixed {
		return raw
	}
	var b bytes.Buffer
	var w io.WriteCloser
	switch seg % 4 {
	case 0:
		w = gzip.NewWriter(&b)
	case 1:
		w = zlib.NewWriter(&b)
	case 2:
		return raw
	default:
		return segment.Compress(raw)
	}
	if _, err := w.Write(raw); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// pack ingests every segment of replays at once, so that they share a
// batch (one object), and fails unless each gets want.
func (e *env) pack(t testing.TB, want packer.Result, replays ...*replay) {
	t.Helper()
	var wg sync.WaitGroup
	for _, r := range replays {
		for s := range r.raw {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.packer.Ingest(context.Background(), r.message(s))
				if err != nil || res != want {
					t.Errorf("ingest %s/%d: %v, %v; want %v", r.id, s, res, err, want)
				}
			}()
		}
	}
	wg.Wait()
}

// segmentRow is a stored segment as the read path sees it.
type segmentRow struct {
	id          segment.ID
	path, enc   string
	start, stop int64
	kek         uuid.UUID
	dek         []byte
}

func (e *env) segments(t testing.TB, project int64, replay uuid.UUID) []segmentRow {
	t.Helper()
	rows, err := e.d.DB.Pool.Query(context.Background(), `
		SELECT project_id, replay_id, segment_id, type, blob_path, encoding, byte_start, byte_stop, kek_id, wrapped_dek
		FROM segments WHERE project_id = $1 AND replay_id = $2 ORDER BY segment_id`, project, replay)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (segmentRow, error) {
		var x segmentRow
		err := r.Scan(&x.id.ProjectID, &x.id.ReplayID, &x.id.SegmentID, &x.id.Type, &x.path, &x.enc, &x.start, &x.stop, &x.kek, &x.dek)
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readBack opens every segment of r the way Serve does (ranged read,
// unwrap, decrypt, decompress) and fails unless each equals the original
// byte for byte.
func (e *env) readBack(t testing.TB, r *replay) {
	t.Helper()
	ctx := context.Background()
	rows := e.segments(t, r.project, r.id)
	if len(rows) != len(r.raw) {
		t.Fatalf("replay %s: %d segment rows, want %d", r.id, len(rows), len(r.raw))
	}
	for _, x := range rows {
		ct, err := e.d.Blobs.ReadRange(ctx, x.path, x.start, x.stop-x.start)
		if err != nil {
			t.Fatal(err)
		}
		kek, err := e.keks.Get(ctx, x.kek)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := crypt.Open(kek, x.id.AAD(), ct, x.dek)
		if err != nil {
			t.Fatalf("open %s: %v", x.id, err)
		}
		got, err := segment.Decode(segment.Encoding(x.enc), pt, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(r.raw[x.id.SegmentID]) {
			t.Fatalf("segment %s differs from the original", x.id)
		}
	}
}

func (e *env) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.d.DB.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// keyMaterialFound searches every column of every table for any of keys:
// raw in bytea columns, and hex or base64 encoded in the text form of all
// others. It returns where it found one.
func (e *env) keyMaterialFound(t testing.TB, keys [][]byte) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := e.d.DB.Pool.Query(ctx, `
		SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	type column struct{ Table, Name, Type string }
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[column])
	if err != nil {
		t.Fatal(err)
	}
	var encoded []string
	for _, k := range keys {
		encoded = append(encoded, fmt.Sprintf("%x", k), base64Std(k))
	}
	var found []string
	for _, c := range cols {
		ident := pgx.Identifier{c.Table}.Sanitize()
		col := pgx.Identifier{c.Name}.Sanitize()
		var q string
		var arg any
		if c.Type == "bytea" {
			q = fmt.Sprintf(`SELECT count(*) FROM %s AS t, unnest($1::bytea[]) AS k WHERE position(k IN t.%s) > 0`, ident, col)
			arg = keys
		} else {
			q = fmt.Sprintf(`SELECT count(*) FROM %s AS t, unnest($1::text[]) AS k WHERE position(k IN t.%s::text) > 0`, ident, col)
			arg = encoded
		}
		if n := e.count(t, q, arg); n > 0 {
			found = append(found, fmt.Sprintf("%s.%s (%d)", c.Table, c.Name, n))
		}
	}
	return found
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
