package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/api/option"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestErrors drives every error status of the API.
func TestErrors(t *testing.T) {
	const origin = "https://app.example.test"
	cfg := defaults()
	cfg.CORSOrigins = []string{origin}
	e := newEnv(t, cfg)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 12))
	live, shredded, inDeadProject := uuid.New(), uuid.New(), uuid.New()
	var segs []seg
	segs = append(segs, makeSegments(rng, 1, live, "", 8, 2000)...)
	segs = append(segs, makeSegments(rng, 1, shredded, "", 3, 2000)...)
	segs = append(segs, makeSegments(rng, 7, inDeadProject, "", 3, 2000)...)
	pack(t, e.d, 100, segs)
	replayGone := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	projectGone := time.Date(2026, 4, 5, 6, 7, 8, 0, time.UTC)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		// As a shred leaves them: tombstone set, key rows gone.
		{`UPDATE replays SET deleted_at = $1 WHERE replay_id = $2`, []any{replayGone, shredded}},
		{`DELETE FROM segments WHERE replay_id = $1`, []any{shredded}},
		{`UPDATE projects SET deleted_at = $1 WHERE project_id = 7`, []any{projectGone}},
		{`DELETE FROM segments WHERE project_id = 7`, nil},
	} {
		if _, err := e.d.DB.Pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}

	// Servers whose dependencies are down.
	storageDown := e.server(defaults(), nil, deadGCS(t), nil)
	dbDown := e.server(defaults(), deadDB(t, e.d), nil, nil)
	kmsDown := e.server(defaults(), nil, nil, deadKMS(t, e.d))

	expired, err := auth.Mint(testSecret, 1, []string{auth.ScopeRead}, "test", -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := auth.Mint("another-secret-0123456789abcdef-xyz", 1, []string{auth.ScopeRead}, "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ok1 := token(t, 1)
	rec := func(project any, replay any, query string) string {
		u := fmt.Sprintf("/v1/projects/%v/replays/%v/recording", project, replay)
		if query != "" {
			u += "?" + query
		}
		return u
	}
	meta := func(project any, replay any) string {
		return fmt.Sprintf("/v1/projects/%v/replays/%v", project, replay)
	}

	tests := []struct {
		name       string
		base       string // server URL; e.url if ""
		method     string // GET if ""
		path       string
		token      string
		header     map[string]string
		want       int
		wantCode   string    // error code in the body
		retry      bool      // Retry-After expected
		wantGoneAt time.Time // deleted_at expected in the body
	}{
		{name: "missing token", path: rec(1, live, ""), want: 401, wantCode: "unauthenticated"},
		{name: "missing token, bad project id", path: rec("abc", live, ""), want: 401, wantCode: "unauthenticated"},
		{name: "not a bearer token", path: rec(1, live, ""), header: map[string]string{"Authorization": "Basic dTpw"}, want: 401, wantCode: "unauthenticated"},
		{name: "invalid signature", path: rec(1, live, ""), token: forged, want: 401, wantCode: "unauthenticated"},
		{name: "garbage token", path: rec(1, live, ""), token: "not.a.jwt", want: 401, wantCode: "unauthenticated"},
		{name: "expired token", path: rec(1, live, ""), token: expired, want: 401, wantCode: "unauthenticated"},
		{name: "expired token, metadata", path: meta(1, live), token: expired, want: 401, wantCode: "unauthenticated"},
		{name: "token for project 2 reading project 1", path: rec(1, live, ""), token: token(t, 2), want: 403, wantCode: "forbidden"},
		{name: "token for project 2 reading metadata of project 1", path: meta(1, live), token: token(t, 2), want: 403, wantCode: "forbidden"},
		{name: "wrong scope", path: rec(1, live, ""), token: token(t, 1, auth.ScopeDelete), want: 403, wantCode: "forbidden"},
		{name: "bad project id", path: rec("abc", live, ""), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "zero project id", path: rec(0, live, ""), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "bad replay id", path: rec(1, "not-a-uuid", ""), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "bad replay id, metadata", path: meta(1, "1234"), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "malformed range", path: rec(1, live, "segments=a-b"), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "reversed range", path: rec(1, live, "segments=5-2"), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "negative range", path: rec(1, live, "segments=-3"), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "empty range", path: rec(1, live, "segments="), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "range with three parts", path: rec(1, live, "segments=1-2-3"), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "range too large", path: rec(1, live, "segments=0-99999999999"), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "repeated range", path: rec(1, live, "segments=1&segments=2"), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "unknown type", path: rec(1, live, "type=video"), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "unknown format", path: rec(1, live, "format=xml"), token: ok1, want: 400, wantCode: "bad_request"},
		{name: "unknown replay", path: rec(1, uuid.New(), ""), token: ok1, want: 404, wantCode: "not_found"},
		{name: "unknown replay, metadata", path: meta(1, uuid.New()), token: ok1, want: 404, wantCode: "not_found"},
		{name: "replay of another project", path: rec(2, live, ""), token: token(t, 2), want: 404, wantCode: "not_found"},
		{name: "unknown path", path: "/v1/nothing", token: ok1, want: 404, wantCode: "not_found"},
		{name: "wrong method", method: http.MethodDelete, path: rec(1, live, ""), token: ok1, want: 405, wantCode: "method_not_allowed"},
		{name: "shredded replay", path: rec(1, shredded, ""), token: ok1, want: 410, wantCode: "gone", wantGoneAt: replayGone},
		{name: "shredded replay, metadata", path: meta(1, shredded), token: ok1, want: 410, wantCode: "gone", wantGoneAt: replayGone},
		{name: "shredded project", path: rec(7, inDeadProject, ""), token: token(t, 7), want: 410, wantCode: "gone", wantGoneAt: projectGone},
		{name: "shredded project, unknown replay", path: rec(7, uuid.New(), ""), token: token(t, 7), want: 410, wantCode: "gone", wantGoneAt: projectGone},
		{name: "shredded project, metadata", path: meta(7, inDeadProject), token: token(t, 7), want: 410, wantCode: "gone", wantGoneAt: projectGone},
		{name: "storage down", base: storageDown, path: rec(1, live, ""), token: ok1, want: 502, wantCode: "storage_unavailable", retry: true},
		{name: "database down", base: dbDown, path: rec(1, live, ""), token: ok1, want: 503, wantCode: "unavailable", retry: true},
		{name: "database down, metadata", base: dbDown, path: meta(1, live), token: ok1, want: 503, wantCode: "unavailable", retry: true},
		{name: "kms down", base: kmsDown, path: rec(1, live, ""), token: ok1, want: 503, wantCode: "unavailable", retry: true},
		{name: "preflight from an allowed origin", method: http.MethodOptions, path: rec(1, live, ""),
			header: map[string]string{"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}, want: 204},
		{name: "preflight from another origin", method: http.MethodOptions, path: rec(1, live, ""),
			header: map[string]string{"Origin": "https://evil.example.test", "Access-Control-Request-Method": "GET"}, want: 403},
		{name: "allowed origin", path: rec(1, live, ""), token: ok1, header: map[string]string{"Origin": origin}, want: 200},
		{name: "ok", path: rec(1, live, ""), token: ok1, want: 200},
		{name: "ok, metadata", path: meta(1, live), token: ok1, want: 200},
		{name: "head", method: http.MethodHead, path: rec(1, live, ""), token: ok1, want: 200},
		{name: "head, unknown replay", method: http.MethodHead, path: rec(1, uuid.New(), ""), token: ok1, want: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, method := tc.base, tc.method
			if base == "" {
				base = e.url
			}
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.want, body)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if tc.want != 204 && tc.want != 403 || tc.wantCode != "" {
				if got := resp.Header.Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", got)
				}
			}
			if got := resp.Header.Get("Retry-After") != ""; got != tc.retry {
				t.Errorf("Retry-After present = %v, want %v", got, tc.retry)
			}
			corsAllowed := tc.header["Origin"] == origin
			if got := resp.Header.Get("Access-Control-Allow-Origin"); (got == origin) != corsAllowed {
				t.Errorf("Access-Control-Allow-Origin = %q (origin %q)", got, tc.header["Origin"])
			}
			if tc.want == 204 {
				if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "GET") {
					t.Errorf("Access-Control-Allow-Methods = %q", got)
				}
				if got := resp.Header.Get("Access-Control-Allow-Headers"); !strings.Contains(strings.ToLower(got), "authorization") {
					t.Errorf("Access-Control-Allow-Headers = %q", got)
				}
			}
			if tc.wantCode == "" {
				return
			}
			var eb struct {
				Error struct {
					Code      string    `json:"code"`
					Message   string    `json:"message"`
					DeletedAt time.Time `json:"deleted_at"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body %q: %v", body, err)
			}
			if eb.Error.Code != tc.wantCode || eb.Error.Message == "" {
				t.Errorf("error = %+v, want code %s", eb.Error, tc.wantCode)
			}
			if !eb.Error.DeletedAt.Equal(tc.wantGoneAt) {
				t.Errorf("deleted_at = %v, want %v", eb.Error.DeletedAt, tc.wantGoneAt)
			}
		})
	}
}

// TestTamperedBlob flips a byte inside a stored segment. When that is the
// first segment the answer is a plain 500; when the body has already
// started, the stream is cut so the client cannot take it for complete.
func TestTamperedBlob(t *testing.T) {
	e := newEnv(t, defaults())
	rng := rand.New(rand.NewPCG(13, 14))
	first, middle := uuid.New(), uuid.New()
	pack(t, e.d, 1000, append(makeSegments(rng, 1, first, "", 10, 3000), makeSegments(rng, 1, middle, "", 30, 3000)...))
	tamper(t, e.d, segmentRows(t, e.d, 1, first)[0])
	tamper(t, e.d, segmentRows(t, e.d, 1, middle)[20])
	tok := token(t, 1)

	t.Run("first segment", func(t *testing.T) {
		resp := get(t, recordingURL(e.url, 1, first, ""), tok)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 500 || !bytes.Contains(body, []byte(`"integrity"`)) {
			t.Errorf("status %d, body %s; want 500 integrity", resp.StatusCode, body)
		}
	})
	for _, format := range []string{"json", "ndjson"} {
		t.Run("mid-stream/"+format, func(t *testing.T) {
			// One segment per read, each started only when the writer
			// needs it: segments 0-19 go out before the bad one is read.
			url := e.server(Config{MaxReadBytes: 1, ReadParallelism: 1, WindowBytes: 1}, nil, nil, nil)
			resp := get(t, recordingURL(url, 1, middle, "format="+format), tok)
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200 (the failure comes after the body started)", resp.StatusCode)
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Errorf("the body ended cleanly after %d bytes; want a broken transfer", len(body))
			}
			if format == "json" && json.Valid(body) {
				t.Errorf("the cut body is valid JSON")
			}
			if format == "ndjson" {
				if n := bytes.Count(body, []byte("\n")); n != 20 {
					t.Errorf("complete lines = %d, want 20 (the segments before the bad one)", n)
				}
			}
		})
	}
}

// tamper flips one bit in the middle of a stored segment.
func tamper(t *testing.T, d *testenv.Deps, row store.Segment) {
	t.Helper()
	obj, err := d.GCS.Server().GetObject(testenv.TestBucket, row.BlobPath)
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Clone(obj.Content)
	content[(row.ByteStart+row.ByteStop)/2] ^= 0x01
	obj.Content = content
	d.GCS.Server().CreateObject(obj)
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// deadGCS is a blob store whose server is gone.
func deadGCS(t *testing.T) blob.Store {
	t.Helper()
	c, err := blob.NewGCSClient(context.Background(),
		option.WithEndpoint("http://"+closedAddr(t)+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return blob.NewGCS(c, testenv.TestBucket, time.Second)
}

// deadDB is a connection to d's database through a proxy that has been
// stopped: pooled connections break and new ones are refused.
func deadDB(t *testing.T, d *testenv.Deps) *store.DB {
	t.Helper()
	u, err := url.Parse(d.DSN)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	u.Host = l.Addr().String()
	db, err := store.OpenURL(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	l.Close()
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	return db
}

// deadKMS is a KEK cache whose KMS is gone.
func deadKMS(t *testing.T, d *testenv.Deps) *crypt.KEKCache {
	t.Helper()
	c, err := crypt.NewKMSClient(context.Background(), closedAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return crypt.NewKEKCache(crypt.NewKMS(c, d.KMS.KeyName(), 2*time.Second), d.DB.WrappedKEK, 8, time.Minute)
}
