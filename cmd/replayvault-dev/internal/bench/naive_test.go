package bench

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

type countRejects struct{ n int }

func (c *countRejects) Reject(context.Context, map[string]string, []byte, string) error {
	c.n++
	return nil
}

// TestNaiveStoresOneSegment checks that the baseline does what the
// comparison claims: per segment one object, one KMS Encrypt, one row in
// one transaction, and a ciphertext that opens to the payload; in each form
// of request Pack takes.
func TestNaiveStoresOneSegment(t *testing.T) {
	for _, form := range []PushForm{FormDirect, FormPubSub} {
		t.Run(string(form), func(t *testing.T) { testNaiveStoresOneSegment(t, form) })
	}
}

func testNaiveStoresOneSegment(t *testing.T, form PushForm) {
	d := testenv.NewDeps(t)
	ctx := context.Background()
	if _, err := d.DB.Pool.Exec(ctx, NaiveSchema); err != nil {
		t.Fatal(err)
	}
	rej := &countRejects{}
	n := NewNaive(d.DB, d.Blobs, d.Wrapper, rej, segment.Limits{})

	corpus := NewCorpus(workload.SizeDist{Median: 4 << 10, Min: 1 << 10, Max: 16 << 10, Sigma: 0.5}, 4, 1)
	stream := NewStream(corpus, workload.LengthDist{Min: 3, Max: 3, Alpha: 1}, 1, 1, 7).WithForm(form)
	var tx0 int64
	if err := d.DB.Pool.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(&tx0); err != nil {
		t.Fatal(err)
	}
	gcs0, enc0 := d.GCS.Counts(), d.KMS.EncryptCalls()
	const segs = 3
	var msgs []Message
	for range segs {
		m := stream.Next()
		msgs = append(msgs, m)
		if m.ContentType != form.ContentType() {
			t.Fatalf("stream of form %s made a request of type %s", form, m.ContentType)
		}
		if code := serveNaive(n, m); code != http.StatusOK {
			t.Fatalf("push: status %d, want 200", code)
		}
	}
	if got := d.GCS.Counts().Uploads - gcs0.Uploads; got != segs {
		t.Errorf("uploads = %d, want %d (one per segment)", got, segs)
	}
	if got := d.KMS.EncryptCalls() - enc0; got != segs {
		t.Errorf("KMS Encrypt calls = %d, want %d (one per segment)", got, segs)
	}
	if rej.n != 0 || n.Stored.Load() != segs {
		t.Errorf("rejected %d, stored %d; want 0, %d", rej.n, n.Stored.Load(), segs)
	}

	// Every row opens back to its payload.
	rows, err := d.DB.Pool.Query(ctx, `SELECT project_id, replay_id, type, segment_id, object, key_id, kms_wrapped_key, wrapped_dek FROM naive_segments ORDER BY segment_id`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id              segment.ID
		object          string
		keyID           uuid.UUID
		wrappedKey, dek []byte
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id.ProjectID, &r.id.ReplayID, &r.id.Type, &r.id.SegmentID, &r.object, &r.keyID, &r.wrappedKey, &r.dek); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	rows.Close()
	if len(got) != segs {
		t.Fatalf("rows = %d, want %d", len(got), segs)
	}
	for i, r := range got {
		key, err := crypt.UnwrapKEK(ctx, d.Wrapper, r.keyID, r.wrappedKey)
		if err != nil {
			t.Fatalf("unwrap key of segment %d: %v", i, err)
		}
		ct, err := d.GCS.Object(testenv.TestBucket, r.object)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := crypt.Open(key, r.id.AAD(), ct, r.dek)
		if err != nil {
			t.Fatalf("open segment %d: %v", i, err)
		}
		decode := packer.DecodePush
		if form == FormDirect {
			decode = packer.DecodeDirect
		}
		m, err := decode(msgs[r.id.SegmentID].Body)
		if err != nil {
			t.Fatal(err)
		}
		if string(pt) != string(m.Data) {
			t.Errorf("segment %d opens to %d bytes, want the %d-byte payload", i, len(pt), len(m.Data))
		}
	}

	// A redelivery stores nothing new.
	if code := serveNaive(n, msgs[0]); code != http.StatusOK {
		t.Fatalf("redelivery: status %d, want 200", code)
	}
	if n.Duplicate.Load() != 1 {
		t.Errorf("duplicates = %d, want 1", n.Duplicate.Load())
	}
}

// serveNaive sends m to n and returns the status it answered.
func serveNaive(n *Naive, m Message) int {
	w := httptest.NewRecorder()
	req := httptest.NewRequest(m.Method, "/", bytes.NewReader(m.Body))
	req.Header.Set("Content-Type", m.ContentType)
	n.ServeHTTP(w, req)
	return w.Code
}

// TestDBProxyCountsRoundTrips checks the proxy's counting against pgx: a
// new statement costs two round trips (prepare, then execute), a cached one
// one, and a transaction of two cached statements four (begin, two
// statements, commit).
func TestDBProxyCountsRoundTrips(t *testing.T) {
	dsn := testenv.NewDB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartDBProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	db := strings.TrimPrefix(u.Path, "/")
	u.Host = p.Addr()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	check := func(name string, want int64, fn func() error) {
		t.Helper()
		before := p.RoundTrips()[db]
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := p.RoundTrips()[db] - before; got != want {
			t.Errorf("%s: %d round trips, want %d", name, got, want)
		}
	}
	var x int
	check("new statement", 2, func() error { return conn.QueryRow(ctx, `SELECT $1::int`, rand.IntN(10)).Scan(&x) })
	check("cached statement", 1, func() error { return conn.QueryRow(ctx, `SELECT $1::int`, rand.IntN(10)).Scan(&x) })
	check("transaction", 4, func() error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT $1::int`, 1); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT $1::int`, 2); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	p.SetLatency(50 * time.Millisecond)
	start := time.Now()
	check("delayed query", 1, func() error { return conn.QueryRow(ctx, `SELECT $1::int`, 3).Scan(&x) })
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("query through a 50 ms proxy took %s", d)
	}
}
