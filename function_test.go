package replayvault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/direct"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// startFunction serves the registered function target on a free port, the
// way functions-framework runs it in production, and returns its URL.
func startFunction(t *testing.T, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	t.Setenv("FUNCTION_TARGET", target)
	go func() {
		if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
			t.Errorf("functions framework: %v", err)
		}
	}()
	url := "http://127.0.0.1:" + port
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return url
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("functions framework did not listen on %s", port)
	return ""
}

// TestPackOverHTTP sends 2,000 segments concurrently as Pub/Sub pushes
// (plain and as CloudEvents) to the registered Pack function, configured only through the environment
// as deployed, and checks group commit end to end.
func TestPackOverHTTP(t *testing.T) {
	d := testenv.NewDeps(t)
	ps := testenv.NewPubSub(t)
	ctx := context.Background()
	for k, v := range packEnv(t, d, ps) {
		t.Setenv(k, v)
	}
	for k, v := range map[string]string{"FLUSH_SEGMENTS": "500", "FLUSH_AGE": "2s", "MAX_CONCURRENCY": "2000"} {
		t.Setenv(k, v)
	}
	url := startFunction(t, "Pack")
	xacts := func() int64 {
		var n int64
		// Other backends report their counters within a second or so.
		if err := d.DB.Pool.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	xactsBefore := xacts()

	const n = 2000
	rng := rand.New(rand.NewPCG(42, 42))
	payloads := make([][]byte, n)
	replays := make([]uuid.UUID, 20)
	for i := range replays {
		replays[i] = uuid.New()
	}
	for i := range payloads {
		payloads[i] = workload.Segment(rng, i/len(replays), 1_700_000_000_000+int64(i)*1000, 500+rng.IntN(3000))
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: n}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := pushRequest(url, strconv.Itoa(i), payloads[i], map[string]string{
				"project_id": "9",
				"replay_id":  replays[i%len(replays)].String(),
				"segment_id": strconv.Itoa(i / len(replays)),
			})
			resp, err := hc.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				statuses[-1]++
				return
			}
			resp.Body.Close()
			statuses[resp.StatusCode]++
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if statuses[http.StatusOK] != n {
		t.Fatalf("statuses = %v, want %d × 200", statuses, n)
	}

	var rows int
	// Recording rows only: Pack also stores the slices it derives.
	if err := d.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM segments WHERE type = 'recording'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != n {
		t.Errorf("segment rows = %d, want %d", rows, n)
	}
	var objs []string
	if err := d.Blobs.List(ctx, "", func(o blob.Object) error {
		objs = append(objs, o.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(objs) < 4 || len(objs) > 8 {
		t.Errorf("objects = %d, want 4..8 (2,000 segments at FLUSH_SEGMENTS=500)", len(objs))
	}
	if c := d.KMS.EncryptCalls(); c != 1 {
		t.Errorf("KMS Encrypt calls = %d, want 1", c)
	}
	time.Sleep(1500 * time.Millisecond) // let the function's backends flush their statistics
	t.Logf("2,000 segments: %d objects, %d KMS Encrypt calls, %d uploads, ~%d database transactions (pg_stat_database, incl. this test's queries), %s (%.0f segments/s)",
		len(objs), d.KMS.EncryptCalls(), d.GCS.Counts().Uploads, xacts()-xactsBefore, elapsed, n/elapsed.Seconds())

	// Every row's range opens to the original payload.
	keks := d.KEKCache()
	r, err := d.DB.Pool.Query(ctx, `SELECT replay_id, segment_id, blob_path, byte_start, byte_stop, encoding, kek_id, wrapped_dek
		FROM segments WHERE type = 'recording'`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	byKey := map[string][]byte{}
	for i, p := range payloads {
		byKey[fmt.Sprintf("%s/%d", replays[i%len(replays)], i/len(replays))] = p
	}
	checked := 0
	for r.Next() {
		var id segment.ID
		var path, enc string
		var startB, stopB int64
		var kekID uuid.UUID
		var dek []byte
		if err := r.Scan(&id.ReplayID, &id.SegmentID, &path, &startB, &stopB, &enc, &kekID, &dek); err != nil {
			t.Fatal(err)
		}
		id.ProjectID, id.Type = 9, segment.DefaultType
		ct, err := d.Blobs.ReadRange(ctx, path, startB, stopB-startB)
		if err != nil {
			t.Fatal(err)
		}
		kek, err := keks.Get(ctx, kekID)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := crypt.Open(kek, id.AAD(), ct, dek)
		if err != nil {
			t.Fatalf("open %s: %v", id, err)
		}
		raw, err := segment.Decode(segment.Encoding(enc), pt, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, byKey[fmt.Sprintf("%s/%d", id.ReplayID, id.SegmentID)]) {
			t.Fatalf("segment %s differs from what was sent", id)
		}
		checked++
	}
	if checked != n {
		t.Errorf("read back %d segments, want %d", checked, n)
	}
}

// packEnv is the environment of a Pack function on d's stand-ins, with a
// fresh reject topic on the emulator ps.
func packEnv(t *testing.T, d *testenv.Deps, ps *testenv.PubSub) map[string]string {
	t.Helper()
	ctx := t.Context()
	client, err := ps.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rejectTopic := "rejects-" + uuid.NewString()[:8]
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: fmt.Sprintf("projects/%s/topics/%s", ps.Project(), rejectTopic)}); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"DATABASE_URL":          d.DSN,
		"BUCKET":                testenv.TestBucket,
		"STORAGE_EMULATOR_HOST": d.GCS.Host(),
		"KMS_KEY":               d.KMS.KeyName(),
		"KMS_ENDPOINT":          d.KMS.Endpoint(),
		"GOOGLE_CLOUD_PROJECT":  ps.Project(),
		"PUBSUB_EMULATOR_HOST":  ps.Host(),
		"REJECT_TOPIC":          rejectTopic,
		"LOG_LEVEL":             "warn",
	}
}

// pushRequest is the request a Pub/Sub push subscription sends to Pack for
// one message: the plain push body for an even id (what
// google_pubsub_subscription.pack sends), and the same body as a binary-mode
// messagePublished CloudEvent (ce-* headers, as Eventarc sends it) for an
// odd one; for ids 2 mod 4, Ingest's direct form instead (direct.ContentType).
func pushRequest(url, id string, data []byte, attrs map[string]string) *http.Request {
	body, _ := json.Marshal(map[string]any{
		"subscription": "projects/p/subscriptions/pack",
		"message":      map[string]any{"messageId": id, "data": data, "attributes": attrs, "publishTime": "2026-01-01T00:00:00Z"},
	})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if n, _ := strconv.Atoi(id); n%4 == 2 {
		// Ingest's direct form (PUT): the payload as the body after the block.
		block, _ := direct.AppendBlock(nil, "direct-"+id, attrs)
		req, _ = http.NewRequest(http.MethodPut, url, bytes.NewReader(append(block, data...)))
		req.Header.Set("Content-Type", direct.ContentType)
	}
	if n, _ := strconv.Atoi(id); n%2 == 1 {
		req.Header.Set("ce-specversion", "1.0")
		req.Header.Set("ce-id", id)
		req.Header.Set("ce-source", "//pubsub.googleapis.com/projects/p/topics/segments")
		req.Header.Set("ce-type", "google.cloud.pubsub.topic.v1.messagePublished")
	}
	return req
}
