package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/replayvault/replayvault/shared/workload"
)

// TestDevStack runs the dev stack as `replayvault-dev dev --data-dir` does, from
// a freshly built binary, and pushes everything through the Pub/Sub
// emulator's push delivery to Pack: 3 replays × 50 segments come back
// exactly through Serve, a redelivered duplicate changes nothing, and a
// poison message ends up on the reject topic. Stop leaves no process
// behind, and a restart on the same data dir serves the same replays.
func TestDevStack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, the Pub/Sub emulator and three function servers")
	}
	bin := buildReplayvault(t)
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	// PostgreSQL runs as another user when we are root and must enter the
	// directory, which a t.TempDir (0700) would not let it.
	dataDir, err := os.MkdirTemp("", "rv-devtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	if err := os.Chmod(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}

	s, err := startStack(ctx, stackOptions{Binary: bin, DataDir: dataDir, LogLevel: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			s.Stop()
		}
	})
	t.Logf("stack up in %s", s.started.Round(time.Millisecond))
	failWithLogs := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\n%s", append(args, s.logTails(20))...)
	}

	tok, err := s.token(devProject)
	if err != nil {
		t.Fatal(err)
	}
	serve := s.funcs["Serve"].url
	client, err := s.ps.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pub := client.Publisher(s.topicName(devSegmentTopic))
	defer pub.Stop()

	// 3 replays × 50 segments, every third gzipped, published side by side.
	const replays, segments = 3, 50
	ids := make([]uuid.UUID, replays)
	raw := make([][][]byte, replays)
	sent := make([][][]byte, replays)
	for r := range replays {
		ids[r] = uuid.New()
		raw[r] = generateSession(uint64(r+1), segments, 800+r*700, testStartMS)
		sent[r] = make([][]byte, segments)
		for i, p := range raw[r] {
			sent[r][i] = p
			if i%3 == 1 {
				sent[r][i] = workload.Gzip(p)
			}
		}
	}
	start := time.Now()
	var g errgroup.Group
	for r := range replays {
		g.Go(func() error {
			_, err := publishSegments(ctx, pub, devProject, ids[r], 0, sent[r], nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for r := range replays {
		got, err := waitForSegments(ctx, serve, tok, devProject, ids[r], segments)
		if err != nil {
			failWithLogs("replay %d: %v", r, err)
		}
		if err := sameSegments(raw[r], got); err != nil {
			t.Errorf("replay %d: %v", r, err)
		}
	}
	t.Logf("%d segments through the emulator, Pack and Serve in %s", replays*segments, time.Since(start).Round(time.Millisecond))
	if n := countRows(t, s, "segments WHERE type = 'recording'"); n != replays*segments {
		t.Fatalf("segment rows = %d, want %d", n, replays*segments)
	}
	blobsBefore := countRows(t, s, "blobs")

	t.Run("duplicate publish changes nothing", func(t *testing.T) {
		// The same 50 messages again, as a publisher retry would send them.
		msgIDs, err := publishSegments(ctx, pub, devProject, ids[0], 0, sent[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		results, err := waitPackResults(ctx, s.funcs["Pack"].logPath, msgIDs)
		if err != nil {
			failWithLogs("%v", err)
		}
		for id, res := range results {
			if res != "duplicate" {
				t.Errorf("message %s: Pack result %q, want duplicate", id, res)
			}
		}
		if n := countRows(t, s, "segments WHERE type = 'recording'"); n != replays*segments {
			t.Errorf("segment rows = %d after the duplicates, want %d", n, replays*segments)
		}
		code, body, err := getRecording(ctx, serve, tok, devProject, ids[0], "json")
		if err != nil || code != http.StatusOK {
			t.Fatalf("recording: HTTP %d, %v", code, err)
		}
		if !bytes.Equal(body, joinSegments(raw[0])) {
			t.Errorf("replay 0 reads back differently after the duplicates")
		}
		meta := replayMeta(t, ctx, serve, tok, devProject, ids[0])
		if meta.SegmentCount != segments {
			t.Errorf("segment_count = %d after the duplicates, want %d", meta.SegmentCount, segments)
		}
		t.Logf("blobs: %d before the duplicates, %d after", blobsBefore, countRows(t, s, "blobs"))
	})

	t.Run("poison message goes to the reject topic", func(t *testing.T) {
		sub := s.subscriptionName("rejects-" + uuid.NewString()[:8])
		if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
			Name: sub, Topic: s.topicName(devRejectTopic), AckDeadlineSeconds: 60,
		}); err != nil {
			t.Fatal(err)
		}
		poison := []struct {
			attrs map[string]string
			data  []byte
		}{
			{map[string]string{"project_id": "1", "replay_id": "not-a-uuid", "segment_id": "0"}, []byte(`[{"type":4,"timestamp":1}]`)},
			{map[string]string{"project_id": "1", "replay_id": uuid.NewString(), "segment_id": "0"}, []byte(`{"not":"an array"`)},
		}
		want := map[string]*pubsub.Message{}
		for _, p := range poison {
			if _, err := pub.Publish(ctx, &pubsub.Message{Data: p.data, Attributes: p.attrs}).Get(ctx); err != nil {
				t.Fatal(err)
			}
			want[p.attrs["replay_id"]] = &pubsub.Message{Data: p.data, Attributes: p.attrs}
		}
		got := receive(t, ctx, client.Subscriber(sub), len(poison))
		for _, m := range got {
			w := want[m.Attributes["replay_id"]]
			if w == nil {
				t.Errorf("unexpected rejected message %v", m.Attributes)
				continue
			}
			if m.Attributes["reject_reason"] == "" {
				t.Errorf("rejected message %v has no reject_reason", m.Attributes)
			}
			attrs := map[string]string{}
			for k, v := range m.Attributes {
				if k != "reject_reason" {
					attrs[k] = v
				}
			}
			if diff := cmp.Diff(w.Attributes, attrs); diff != "" {
				t.Errorf("rejected message attributes (-published +rejected):\n%s", diff)
			}
			if !bytes.Equal(m.Data, w.Data) {
				t.Errorf("rejected message data = %q, want %q", m.Data, w.Data)
			}
			t.Logf("rejected: replay_id=%q reject_reason=%s", m.Attributes["replay_id"], m.Attributes["reject_reason"])
		}
		if n := countRows(t, s, "segments WHERE type = 'recording'"); n != replays*segments {
			t.Errorf("segment rows = %d after the poison, want %d", n, replays*segments)
		}
	})

	t.Run("publish command", func(t *testing.T) {
		var out bytes.Buffer
		err := realMain(ctx, []string{"publish", "-emulator", s.ps.Host(), "-pubsub-project", devPubSubProject,
			"-project", "2", "-generate", "4", "-seed", "7", "-gzip", "-start-ms", strconv.FormatInt(testStartMS, 10)}, &out)
		if err != nil {
			t.Fatal(err)
		}
		replay, err := uuid.Parse(strings.TrimSpace(strings.SplitN(out.String(), "\n", 2)[0]))
		if err != nil {
			t.Fatalf("first line of %q is not the replay id: %v", out.String(), err)
		}
		tok2, err := s.token(2)
		if err != nil {
			t.Fatal(err)
		}
		got, err := waitForSegments(ctx, serve, tok2, 2, replay, 4)
		if err != nil {
			failWithLogs("%v", err)
		}
		if err := sameSegments(generateSession(7, 4, 4096, testStartMS), got); err != nil {
			t.Error(err)
		}
	})

	t.Run("web server", func(t *testing.T) {
		replay := uuid.New()
		seg := []byte(`[{"type":4,"data":{"href":"http://127.0.0.1/","width":800,"height":600},"timestamp":1700000000000}]`)
		resp, err := http.Post(s.webURL+"/ingest?project=1&segment=0&replay="+replay.String(), "application/json", bytes.NewReader(seg))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /ingest: %s", resp.Status)
		}
		got, err := waitForSegments(ctx, serve, tok, devProject, replay, 1)
		if err != nil {
			failWithLogs("%v", err)
		}
		if err := sameSegments([][]byte{seg}, got); err != nil {
			t.Error(err)
		}

		for path, want := range map[string]string{
			"/":                           replay.String(), // listed through Serve
			"/recorder":                   "/static/recorder.js",
			"/viewer":                     "/static/viewer.js",
			"/static/viewer.js":           "rrweb-player",
			"/api/config":                 `"serve_url":"` + serve + `"`,
			"/ingest?project=1":           "", // GET is not allowed
			"/vendor/rrweb/no-such-file":  "",
			"/api/token?project=notanint": "",
		} {
			resp, err := http.Get(s.webURL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want == "" {
				if resp.StatusCode < 400 {
					t.Errorf("GET %s: %s, want an error", path, resp.Status)
				}
				continue
			}
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
				t.Errorf("GET %s: %s, body %q; want 200 containing %q", path, resp.Status, truncate(body, 200), want)
			}
		}
	})

	t.Run("shred", func(t *testing.T) {
		if err := shredReplay(ctx, s.funcs["Shred"].url, tok, devProject, ids[2]); err != nil {
			t.Fatal(err)
		}
		code, _, err := getRecording(ctx, serve, tok, devProject, ids[2], "json")
		if err != nil || code != http.StatusGone {
			t.Errorf("after shred: HTTP %d, %v; want 410", code, err)
		}
	})

	// Stop ends every process the stack started.
	var pids []int
	for _, f := range s.funcs {
		pids = append(pids, f.cmd.Process.Pid)
	}
	emulator := s.ps.Host()
	stopStart := time.Now()
	if err := s.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	stopped = true
	t.Logf("stopped in %s", time.Since(stopStart).Round(time.Millisecond))
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("function process %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	for _, url := range []string{serve, "http://" + emulator} {
		if resp, err := http.Get(url + "/"); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after Stop", url)
		}
	}

	// A restart on the same data dir: same database, objects, KMS seed and
	// JWT secret, so the old token reads the old replays.
	s2, err := startStack(ctx, stackOptions{Binary: bin, DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	t.Logf("restarted in %s", s2.started.Round(time.Millisecond))
	code, body, err := getRecording(ctx, s2.funcs["Serve"].url, tok, devProject, ids[0], "json")
	if err != nil || code != http.StatusOK || !bytes.Equal(body, joinSegments(raw[0])) {
		t.Errorf("after restart, replay 0: HTTP %d, %v, %d bytes; want it identical", code, err, len(body))
	}
	if code, _, err := getRecording(ctx, s2.funcs["Serve"].url, tok, devProject, ids[2], "json"); err != nil || code != http.StatusGone {
		t.Errorf("after restart, shredded replay 2: HTTP %d, %v; want 410", code, err)
	}
	// New segments still flow: the push subscription follows Pack's new port.
	more := generateSession(9, 2, 1000, testStartMS+24*3600*1000)
	if _, err := publishSegments(ctx, s2.publisher, devProject, ids[1], segments, more, nil); err != nil {
		t.Fatal(err)
	}
	got, err := waitForSegments(ctx, s2.funcs["Serve"].url, tok, devProject, ids[1], segments+len(more))
	if err != nil {
		t.Fatalf("after restart: %v\n%s", err, s2.logTails(20))
	}
	if err := sameSegments(append(raw[1], more...), got); err != nil {
		t.Error(err)
	}
}

// TestDevStackTempDir checks that a stack without a data dir removes its
// state on Stop, and that a failed start stops what did start.
func TestDevStackTempDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and the Pub/Sub emulator")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	pattern := filepath.Join(os.TempDir(), "replayvault-dev-*")
	before, _ := filepath.Glob(pattern)
	// A binary that is not replayvault: the functions cannot start, so
	// startStack fails after the dependencies are up and must stop them.
	_, err := startStack(ctx, stackOptions{Binary: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "exited during start") {
		t.Fatalf("startStack with /bin/false: err = %v, want a function start error", err)
	}
	after, _ := filepath.Glob(pattern)
	for _, dir := range after {
		if !slices.Contains(before, dir) {
			t.Errorf("state dir %s left behind by the failed start", dir)
		}
	}
}

// testStartMS is when generated test sessions start (Unix ms).
const testStartMS = 1_790_000_000_000

// buildReplayvault builds this command into a temp dir: the stack runs the
// functions from a real replayvault binary, and in a test os.Executable is
// the test binary.
func buildReplayvault(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "replayvault")
	start := time.Now()
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %s", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// countRows counts the rows of a table in the stack's database.
func countRows(t *testing.T, s *stack, table string) int {
	t.Helper()
	var n int
	if err := s.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// replayMetadata is the part of Serve's metadata response the tests read.
type replayMetadata struct {
	SegmentCount int `json:"segment_count"`
}

func replayMeta(t *testing.T, ctx context.Context, serveURL, token string, project int64, replay uuid.UUID) replayMetadata {
	t.Helper()
	code, body, err := call(ctx, http.MethodGet, fmt.Sprintf("%s/v1/projects/%d/replays/%s", serveURL, project, replay), token)
	if err != nil || code != http.StatusOK {
		t.Fatalf("replay metadata: HTTP %d, %v: %s", code, err, truncate(body, 200))
	}
	var m replayMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitPackResults reads Pack's log until it has acknowledged every one of
// the messages, and returns each one's result (stored, duplicate, ...).
// Pack logs each ack at debug level; the log is the only place that says
// when a message that changes nothing has been handled.
func waitPackResults(ctx context.Context, logPath string, ids []string) (map[string]string, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for {
		results := map[string]string{}
		f, err := os.Open(logPath)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Message   string `json:"message"`
				MessageID string `json:"message_id"`
				Result    string `json:"result"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "segment acked" && want[line.MessageID] {
				results[line.MessageID] = line.Result
			}
		}
		f.Close()
		if len(results) == len(want) {
			return results, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("Pack acknowledged %d of %d messages: %w", len(results), len(want), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// receive pulls n messages from a subscription, acking them.
func receive(t *testing.T, ctx context.Context, sub *pubsub.Subscriber, n int) []*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var mu sync.Mutex
	var got []*pubsub.Message
	err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == n {
			cancel()
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("received %d messages, want %d", len(got), n)
	}
	return got
}

// TestPrefixWriter checks that function logs are prefixed line by line,
// whatever the write boundaries.
func TestPrefixWriter(t *testing.T) {
	var b bytes.Buffer
	w := &prefixWriter{w: &b, prefix: "[pack ] "}
	for _, s := range []string{"one\ntw", "o\n", "three\nfour"} {
		w.Write([]byte(s))
	}
	if got, want := b.String(), "[pack ] one\n[pack ] two\n[pack ] three\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestPublishArgs checks publish's argument errors, which need no stack.
func TestPublishArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "nothing to publish"},
		{[]string{"-generate", "2", "file.json"}, "not both"},
		{[]string{"-project", "0", "-generate", "1"}, "-project"},
		{[]string{"-replay", "nope", "-generate", "1"}, "-replay"},
		{[]string{"-emulator", "127.0.0.1:1", "no-such-file.json"}, "no-such-file.json"},
	} {
		err := realMain(context.Background(), append([]string{"publish"}, tc.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("publish %v: err = %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

// TestGenerateSession checks that generated sessions are deterministic
// JSON arrays whose timestamps run on across segments.
func TestGenerateSession(t *testing.T) {
	a, b := generateSession(5, 3, 2000, testStartMS), generateSession(5, 3, 2000, testStartMS)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different sessions:\n%s", diff)
	}
	var last int64
	for i, seg := range a {
		var events []struct {
			Timestamp int64 `json:"timestamp"`
		}
		if err := json.Unmarshal(seg, &events); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		for _, e := range events {
			if e.Timestamp <= last {
				t.Fatalf("segment %d: timestamp %d after %d", i, e.Timestamp, last)
			}
			last = e.Timestamp
		}
	}
}
