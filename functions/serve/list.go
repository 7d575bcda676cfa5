package serve

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/store"
)

// List limits: a page holds at most maxListLimit replays, and one request
// examines at most listScanBudget replay rows whatever its filters, so a
// filter that matches nothing costs a bounded walk of the index, not the
// whole project.
const (
	defaultListLimit = 50
	maxListLimit     = 500
	listScanBudget   = 5000
	maxFilterLen     = 512
)

// ListResponse is the body of GET /v1/projects/{project}/replays.
type ListResponse struct {
	Replays []Metadata `json:"replays"`
	// NextCursor continues the list (?cursor=); null at its end. A page
	// may be shorter than the limit, even empty, and still have one.
	NextCursor *string `json:"next_cursor"`
}

// list answers GET /v1/projects/{project}/replays: the project's live
// replays, newest first, filtered and keyset-paginated.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	project, _, err := api.Authorize(r, s.verifier, r.PathValue("project"), auth.ScopeRead)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	f, after, limit, err := parseListQuery(r.URL.Query())
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	page, err := s.db.ListReplays(r.Context(), project, f, after, limit, listScanBudget)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	resp := ListResponse{Replays: make([]Metadata, 0, len(page.Replays))}
	for i := range page.Replays {
		resp.Replays = append(resp.Replays, metadataJSON(&page.Replays[i]))
	}
	if page.Next != nil {
		c := encodeCursor(*page.Next)
		resp.NextCursor = &c
	}
	api.NoStore(w)
	api.WriteJSON(w, http.StatusOK, resp)
}

// parseListQuery reads from_ts, to_ts (ms, the first event's time),
// min_duration_ms, min_segments, url, error_id, cursor and limit.
func parseListQuery(v url.Values) (f store.ListFilter, after *store.ListCursor, limit int, err error) {
	bad := func(format string, args ...any) (store.ListFilter, *store.ListCursor, int, error) {
		return store.ListFilter{}, nil, 0, fmt.Errorf("%w: "+format, append([]any{derrors.InvalidArgument}, args...)...)
	}
	known := map[string]bool{"from_ts": true, "to_ts": true, "min_duration_ms": true, "min_segments": true,
		"url": true, "error_id": true, "cursor": true, "limit": true}
	for name, vals := range v {
		if !known[name] {
			return bad("unknown parameter %q", name)
		}
		if len(vals) > 1 {
			return bad("%s given %d times", name, len(vals))
		}
	}
	num := func(name string, max int64) (int64, bool) {
		s, ok := v[name]
		if !ok {
			return 0, true
		}
		n, ok := millisParam(s[0])
		return n, ok && n <= max
	}
	var ok bool
	if f.FromTS, ok = num("from_ts", 1<<62); !ok {
		return bad("from_ts must be milliseconds since the epoch")
	}
	if f.ToTS, ok = num("to_ts", 1<<62); !ok {
		return bad("to_ts must be milliseconds since the epoch")
	}
	if _, has := v["to_ts"]; has && f.ToTS < f.FromTS {
		return bad("to_ts %d is before from_ts %d", f.ToTS, f.FromTS)
	}
	if f.MinDurationMS, ok = num("min_duration_ms", 1<<62); !ok {
		return bad("min_duration_ms must be a whole number of milliseconds")
	}
	minSegs, ok := num("min_segments", 1<<31-1)
	if !ok {
		return bad("min_segments must be a whole number below 2^31")
	}
	f.MinSegments = int(minSegs)
	f.URL, f.ErrorID = v.Get("url"), v.Get("error_id")
	if len(f.URL) > maxFilterLen || len(f.ErrorID) > maxFilterLen {
		return bad("url and error_id are limited to %d bytes", maxFilterLen)
	}
	limit = defaultListLimit
	if _, has := v["limit"]; has {
		n, ok := num("limit", maxListLimit)
		if !ok || n < 1 {
			return bad("limit must be 1 to %d", maxListLimit)
		}
		limit = int(n)
	}
	if c, has := v["cursor"]; has {
		cur, err := decodeCursor(c[0])
		if err != nil {
			return bad("cursor is not one this API returned")
		}
		after = &cur
	}
	return f, after, limit, nil
}

// A cursor is opaque to clients: base64url of "started_at_ms.replay_id".
func encodeCursor(c store.ListCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.StartedAtMS, 10) + "." + c.ReplayID.String()))
}

func decodeCursor(s string) (store.ListCursor, error) {
	if len(s) > 128 {
		return store.ListCursor{}, errors.New("cursor too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return store.ListCursor{}, err
	}
	ts, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return store.ListCursor{}, errors.New("malformed cursor")
	}
	n, ok := millisParam(ts)
	if !ok {
		return store.ListCursor{}, errors.New("malformed cursor")
	}
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return store.ListCursor{}, errors.New("malformed cursor")
	}
	return store.ListCursor{StartedAtMS: n, ReplayID: u}, nil
}
