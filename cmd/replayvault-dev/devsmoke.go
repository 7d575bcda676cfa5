package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/workload"
)

// smokeTimeout bounds the smoke check after the stack is up.
const smokeTimeout = 2 * time.Minute

// runSmoke pushes a generated session of n segments through the emulator's
// push delivery to Pack, reads it back through Serve until every segment is
// there, checks it byte for byte, shreds it through Shred and checks that
// Serve then answers 410. It returns the one-line summary.
func runSmoke(ctx context.Context, s *stack, n int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, smokeTimeout)
	defer cancel()
	replay := uuid.New()
	raw := generateSession(rand.Uint64(), n, 4096, time.Now().Add(-time.Hour).UnixMilli())
	sent := make([][]byte, n)
	for i, p := range raw {
		// Every other segment gzipped, as browser SDKs send them.
		sent[i] = p
		if i%2 == 1 {
			sent[i] = workload.Gzip(p)
		}
	}
	tok, err := s.token(devProject)
	if err != nil {
		return "", err
	}
	serve := s.funcs["Serve"].url

	start := time.Now()
	if _, err := publishSegments(ctx, s.publisher, devProject, replay, 0, sent, nil); err != nil {
		return "", err
	}
	got, err := waitForSegments(ctx, serve, tok, devProject, replay, n)
	if err != nil {
		return "", err
	}
	if err := sameSegments(raw, got); err != nil {
		return "", err
	}
	// The player's format: one array of every event, in segment order.
	code, body, err := getRecording(ctx, serve, tok, devProject, replay, "json")
	if err != nil {
		return "", err
	}
	if code != http.StatusOK || !bytes.Equal(body, joinSegments(raw)) {
		return "", fmt.Errorf("recording as one JSON array (HTTP %d, %d bytes) differs from the %d segments sent", code, len(body), n)
	}
	readBack := time.Since(start)

	if err := shredReplay(ctx, s.funcs["Shred"].url, tok, devProject, replay); err != nil {
		return "", err
	}
	code, body, err = getRecording(ctx, serve, tok, devProject, replay, "json")
	if err != nil {
		return "", err
	}
	if code != http.StatusGone {
		return "", fmt.Errorf("after shred, Serve answered HTTP %d (want 410): %s", code, truncate(body, 200))
	}
	if err := smokeIngest(ctx, s, tok); err != nil {
		return "", err
	}
	lines, traced, err := scanLogs(s, map[string]string{
		"token": tok, "JWT secret": s.jwtSecret, "sweep token": s.sweepToken,
	}, append(raw, sent...))
	if err != nil {
		return "", err
	}
	if traced == 0 {
		return "", fmt.Errorf("none of the functions' %d log lines carries a trace field", lines)
	}
	tot, err := s.metrics.waitFor(ctx, func(t devTotals) bool { return t.Received >= float64(n) && t.Flushes >= 1 && t.Reads >= 1 })
	if err != nil {
		return "", fmt.Errorf("the functions' metrics never reached the dev stack (%+v): %w", tot, err)
	}
	return fmt.Sprintf("smoke: ok: %d segments published, read back identical in %.1fs, shredded, 410 confirmed, 2 segments through Ingest read back, metrics exported (%.0f received, %.0f flushes), %d log lines clean (%d traced) (stack up in %.1fs)",
		n, readBack.Seconds(), tot.Received, tot.Flushes, lines, traced, s.started.Seconds()), nil
}

// smokeIngest sends a two-segment replay through Ingest's rrweb endpoint
// with the dev ingest key, as the recorder snippet does, and reads it back
// through Serve.
func smokeIngest(ctx context.Context, s *stack, tok string) error {
	replay := uuid.New()
	raw := generateSession(rand.Uint64(), 2, 2048, time.Now().Add(-time.Hour).UnixMilli())
	for i, p := range raw {
		url := fmt.Sprintf("%s/v1/projects/%d/replays/%s/segments/%d?key=%s", s.funcs["Ingest"].url, devProject, replay, i, s.ingestKey)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(workload.Gzip(p)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", s.origins()[0])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ingest answered HTTP %d: %s", resp.StatusCode, truncate(body, 200))
		}
	}
	got, err := waitForSegments(ctx, s.funcs["Serve"].url, tok, devProject, replay, len(raw))
	if err != nil {
		return fmt.Errorf("through ingest: %w", err)
	}
	if err := sameSegments(raw, got); err != nil {
		return fmt.Errorf("through ingest: %w", err)
	}
	return waitDirect(ctx, s, len(raw))
}

// waitDirect waits until Pack's log shows n segments delivered by Ingest
// directly (PACK_URL; message ids "direct-…") rather than through Pub/Sub:
// the real functions-framework path of a direct push.
func waitDirect(ctx context.Context, s *stack, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		b, err := os.ReadFile(s.funcs["Pack"].logPath)
		if err != nil {
			return err
		}
		got := 0
		for _, line := range bytes.Split(b, []byte("\n")) {
			if bytes.Contains(line, []byte("segment acked")) && bytes.Contains(line, []byte(`"message_id":"direct-`)) {
				got++
			}
		}
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("segments delivered by Ingest directly in Pack's log: %d, want %d (Ingest spilled to Pub/Sub?)", got, n)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitForSegments polls Serve's NDJSON recording (one segment per line)
// until it holds want segments, and returns them.
func waitForSegments(ctx context.Context, serveURL, token string, project int64, replay uuid.UUID, want int) ([][]byte, error) {
	var last string
	for {
		code, body, err := getRecording(ctx, serveURL, token, project, replay, "ndjson")
		switch {
		case err != nil:
			last = err.Error()
		case code == http.StatusOK:
			lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
			if len(body) == 0 {
				lines = nil
			}
			if len(lines) == want {
				return lines, nil
			}
			if len(lines) > want {
				return nil, fmt.Errorf("the Serve function returned %d segments of replay %s, want %d", len(lines), replay, want)
			}
			last = fmt.Sprintf("%d of %d segments stored", len(lines), want)
		case code == http.StatusNotFound:
			last = "replay not found yet"
		default:
			// 401, 403, 410, 5xx: waiting will not help.
			return nil, fmt.Errorf("the Serve function answered HTTP %d: %s", code, truncate(body, 300))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %d segments of replay %s: %w (last: %s)", want, replay, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// getRecording asks Serve for a replay's recording in format (json or
// ndjson) and returns the status and body.
func getRecording(ctx context.Context, serveURL, token string, project int64, replay uuid.UUID, format string) (int, []byte, error) {
	url := fmt.Sprintf("%s/v1/projects/%d/replays/%s/recording?format=%s", serveURL, project, replay, format)
	return call(ctx, http.MethodGet, url, token)
}

// shredReplay deletes a replay through Shred's API.
func shredReplay(ctx context.Context, shredURL, token string, project int64, replay uuid.UUID) error {
	url := fmt.Sprintf("%s/v1/projects/%d/replays/%s", shredURL, project, replay)
	code, body, err := call(ctx, http.MethodDelete, url, token)
	if err != nil {
		return fmt.Errorf("shred %s: %w", replay, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("shred %s: HTTP %d: %s", replay, code, truncate(body, 300))
	}
	return nil
}

func call(ctx context.Context, method, url, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return resp.StatusCode, body, nil
}

// sameSegments checks that Serve returned exactly the segments sent (their
// uncompressed JSON), in order.
func sameSegments(sent, got [][]byte) error {
	if len(got) != len(sent) {
		return fmt.Errorf("read back %d segments, sent %d", len(got), len(sent))
	}
	var errs []error
	for i := range sent {
		if !bytes.Equal(sent[i], got[i]) {
			errs = append(errs, fmt.Errorf("segment %d differs: sent %d bytes %q, read back %d bytes %q",
				i, len(sent[i]), truncate(sent[i], 60), len(got[i]), truncate(got[i], 60)))
		}
	}
	return errors.Join(errs...)
}

// joinSegments is what Serve's JSON format must be for these segments: one
// array of all their events, then a newline.
func joinSegments(segs [][]byte) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, s := range segs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(s[1 : len(s)-1])
	}
	b.WriteString("]\n")
	return b.Bytes()
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
