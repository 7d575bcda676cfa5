package serve

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/store"
)

// TestList packs replays with the real packer, shreds one, and lists them
// over HTTP: newest first (by first event), with filters and a cursor that
// walks every page, and the shredded replay nowhere.
func TestList(t *testing.T) {
	e := newEnv(t, defaults())
	rng := rand.New(rand.NewPCG(5, 6))
	const project = 3
	var all []seg
	ids := make([]uuid.UUID, 6)
	for i := range ids {
		ids[i] = uuid.New()
		// Replay i starts i minutes after the first and has i+2 segments.
		segs := makeSegments(rng, project, ids[i], "", i+2, 800)
		for k := range segs {
			segs[k].raw = windowReplay(rng, project, ids[i], k+1, 99, 99)[k].raw
			shift(t, &segs[k], int64(i)*60_000)
			segs[k].payload = segs[k].raw
		}
		all = append(all, segs...)
	}
	other := makeSegments(rng, project+1, uuid.New(), "", 2, 500)
	pack(t, e.d, 10, append(all, other...))
	if _, err := e.d.DB.ShredReplays(t.Context(), project, []uuid.UUID{ids[2]}, "test"); err != nil {
		t.Fatal(err)
	}

	list := func(query string) ListResponse {
		t.Helper()
		u := fmt.Sprintf("%s/v1/projects/%d/replays?%s", e.url, project, query)
		var lr ListResponse
		if err := json.Unmarshal(readAll(t, get(t, u, token(t, project))), &lr); err != nil {
			t.Fatal(err)
		}
		return lr
	}
	newestFirst := []uuid.UUID{ids[5], ids[4], ids[3], ids[1], ids[0]}

	// Every page of two, by cursor.
	var got []uuid.UUID
	q := url.Values{"limit": {"2"}}
	for pages := 0; ; pages++ {
		lr := list(q.Encode())
		for _, m := range lr.Replays {
			got = append(got, m.ReplayID)
			if m.ProjectID != project || m.SegmentCount == 0 || m.StartedAtMS == nil {
				t.Errorf("replay %s: %+v", m.ReplayID, m)
			}
		}
		if lr.NextCursor == nil {
			break
		}
		if pages > 10 {
			t.Fatal("no end to the pages")
		}
		q.Set("cursor", *lr.NextCursor)
	}
	if diff := cmp.Diff(newestFirst, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}

	ids4 := func(lr ListResponse) []uuid.UUID {
		out := []uuid.UUID{}
		for _, m := range lr.Replays {
			out = append(out, m.ReplayID)
		}
		return out
	}
	first := *list("").Replays[4].StartedAtMS // replay 0
	for _, tc := range []struct {
		query string
		want  []uuid.UUID
	}{
		{"min_segments=6", []uuid.UUID{ids[5], ids[4]}},
		{fmt.Sprintf("from_ts=%d&to_ts=%d", first+60_000, first+3*60_000), []uuid.UUID{ids[3], ids[1]}},
		{"min_duration_ms=150000", []uuid.UUID{ids[5], ids[4]}},
		{"min_segments=100", []uuid.UUID{}},
	} {
		if diff := cmp.Diff(tc.want, ids4(list(tc.query))); diff != "" {
			t.Errorf("?%s (-want +got):\n%s", tc.query, diff)
		}
	}
}

// shift moves every timestamp of a windowReplay segment by d ms.
func shift(t *testing.T, s *seg, d int64) {
	t.Helper()
	var evs []map[string]any
	if err := json.Unmarshal(s.raw, &evs); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		ts := ev["timestamp"].(float64)
		if ts < 1e11 {
			ts *= 1000
		}
		ev["timestamp"] = int64(ts) + d
	}
	b, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	s.raw = b
}

// TestListErrors: auth first, then 400 for every malformed parameter.
func TestListErrors(t *testing.T) {
	e := newEnv(t, defaults())
	u := func(q string) string { return fmt.Sprintf("%s/v1/projects/4/replays?%s", e.url, q) }
	for _, tc := range []struct {
		query, tok string
		status     int
	}{
		{"", "", http.StatusUnauthorized},
		{"limit=0", "", http.StatusUnauthorized},
		{"", token(t, 5), http.StatusForbidden},
		{"", token(t, 4, auth.ScopeDelete), http.StatusForbidden},
		{"", token(t, 4), http.StatusOK},
		{"limit=0", token(t, 4), http.StatusBadRequest},
		{"limit=501", token(t, 4), http.StatusBadRequest},
		{"limit=-1", token(t, 4), http.StatusBadRequest},
		{"limit=1&limit=2", token(t, 4), http.StatusBadRequest},
		{"from_ts=x", token(t, 4), http.StatusBadRequest},
		{"from_ts=10&to_ts=5", token(t, 4), http.StatusBadRequest},
		{"min_segments=99999999999", token(t, 4), http.StatusBadRequest},
		{"min_duration_ms=-3", token(t, 4), http.StatusBadRequest},
		{"cursor=zzz", token(t, 4), http.StatusBadRequest},
		{"cursor=" + encodeCursor(store.ListCursor{StartedAtMS: 1, ReplayID: uuid.New()}), token(t, 4), http.StatusOK},
		{"sort=asc", token(t, 4), http.StatusBadRequest},
		{"url=checkout", token(t, 4), http.StatusOK},
		{"error_id=abc", token(t, 4), http.StatusOK},
	} {
		resp := get(t, u(tc.query), tc.tok)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("?%s: status %d, want %d", tc.query, resp.StatusCode, tc.status)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, u(""), nil)
	req.Header.Set("Authorization", "Bearer "+token(t, 4))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}
