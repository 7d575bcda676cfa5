package ingest

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// testConfig is Ingest with small limits so oversized inputs stay cheap.
func testConfig() Config {
	return Config{
		MaxBodyBytes:    256 << 10,
		MaxDecompressed: 1 << 20,
		KeyCacheTTL:     time.Minute,
		KeyRate:         1000,
		KeyBurst:        1000,
		ProjectRate:     1000,
		ProjectBurst:    1000,
		RetentionDays:   90,
	}
}

// env is an Ingest over a fresh database, publishing to its own topic on the
// Pub/Sub emulator, with a pull subscription to see what was published.
type env struct {
	t      *testing.T
	db     *store.DB
	client *pubsub.Client
	topic  string
	sub    string
	srv    *Server
	url    string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := store.OpenURL(ctx, testenv.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return newEnvDB(t, cfg, db)
}

// newEnvDB is newEnv over an existing database.
func newEnvDB(t *testing.T, cfg Config, db *store.DB) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := &env{t: t, db: db}
	ps := testenv.NewPubSub(t)
	client, err := ps.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	e.client = client
	suffix := uuid.NewString()[:8]
	e.topic = fmt.Sprintf("projects/%s/topics/segments-%s", ps.Project(), suffix)
	e.sub = fmt.Sprintf("projects/%s/subscriptions/segments-%s", ps.Project(), suffix)
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: e.topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: e.sub, Topic: e.topic, AckDeadlineSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	p := client.Publisher(e.topic)
	t.Cleanup(p.Stop)
	pub := NewPublisher(p, 10*time.Second)
	e.srv = New(cfg, db, pub)
	hs := httptest.NewServer(e.srv)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

// key creates an ingest key of project with origins.
func (e *env) key(project int64, origins ...string) string {
	e.t.Helper()
	k := uuid.NewString()[:8] + strings.Repeat("0", 24)
	if err := e.db.CreateIngestKey(context.Background(), store.IngestKey{PublicKey: k, ProjectID: project, Origins: origins}); err != nil {
		e.t.Fatal(err)
	}
	return k
}

// published is one message seen on the subscription.
type published struct {
	Attrs map[string]string
	Data  []byte
}

// pull receives until n messages arrived (acking each), then waits quiet
// for a moment more so an unexpected extra one is seen too.
func (e *env) pull(n int, quiet time.Duration) []published {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		got  []published
		done = make(chan struct{})
		once sync.Once
	)
	go func() {
		<-done
		time.Sleep(quiet)
		cancel()
	}()
	err := e.client.Subscriber(e.sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, published{Attrs: m.Attributes, Data: m.Data})
		if len(got) >= n {
			once.Do(func() { close(done) })
		}
	})
	if err != nil && ctx.Err() == nil {
		e.t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < n {
		e.t.Fatalf("received %d messages, want %d", len(got), n)
	}
	return got
}

// post sends body to path with headers (alternating name, value) and
// returns the status, the decoded error code (if any) and the response.
func (e *env) post(path string, body []byte, headers ...string) (int, string, *http.Response) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body2 struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &body2)
	return resp.StatusCode, body2.Error.Code, resp
}

// envelope builds a Sentry replay envelope: replay_event and
// replay_recording (zlib when compress), plus a client report to drop.
func envelope(replayHex string, seg int, recording []byte, compress bool) []byte {
	if compress {
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		w.Write(recording)
		w.Close()
		recording = b.Bytes()
	}
	ev, _ := json.Marshal(map[string]any{
		"type": "replay_event", "replay_id": replayHex, "segment_id": seg, "replay_type": "session",
		"urls": []string{"http://localhost/page"}, "error_ids": []string{}, "trace_ids": []string{"abc"},
		"sdk":      map[string]string{"name": "sentry.javascript.browser", "version": "8.0.0"},
		"contexts": map[string]any{"browser": map[string]string{"name": "Chrome"}},
	})
	rec := append([]byte(fmt.Sprintf(`{"segment_id":%d}`+"\n", seg)), recording...)
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"event_id":"%s","sent_at":"2024-01-01T00:00:00Z","sdk":{"name":"sentry.javascript.browser","version":"8.0.0"}}`+"\n", replayHex)
	fmt.Fprintf(&b, `{"type":"replay_event"}`+"\n%s\n", ev)
	fmt.Fprintf(&b, `{"type":"replay_recording","length":%d}`+"\n", len(rec))
	b.Write(rec)
	b.WriteString("\n")
	b.WriteString(`{"type":"client_report"}` + "\n" + `{"discarded_events":[]}` + "\n")
	return b.Bytes()
}

// rrwebEvents is a small recording whose events carry ts onward.
func rrwebEvents(ts int64, text string) []byte {
	return []byte(fmt.Sprintf(`[{"type":4,"data":{"href":"http://localhost/p","width":800,"height":600},"timestamp":%d},`+
		`{"type":2,"data":{"node":{"type":0,"childNodes":[],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":%d},`+
		`{"type":3,"data":{"source":5,"text":%q,"isChecked":false,"id":7},"timestamp":%d}]`, ts, ts+1, text, ts+2))
}

func gzipBytes(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// latin1 is how posthog-js spells bytes in a string: one character each.
func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// snapshotBatch is a posthog-js /s/ body: one $snapshot event of session
// sid holding events.
func snapshotBatch(token, sid, window string, events []json.RawMessage) []byte {
	b, _ := json.Marshal([]map[string]any{{
		"event": "$snapshot",
		"properties": map[string]any{
			"$snapshot_data": events, "$session_id": sid, "$window_id": window,
			"$snapshot_bytes": 100, "token": token, "$lib": "web", "$lib_version": "1.200.0",
			"distinct_id": "u1",
		},
	}})
	return b
}
