package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/store"
)

// registerIssues adds the replay-issue API to mux. Reads need issue:read,
// changes issue:write, on the project in the path.
func (s *Server) registerIssues(mux *http.ServeMux) {
	const p = "/v1/projects/{project}"
	mux.HandleFunc("GET "+p+"/issues", s.listIssues)
	mux.HandleFunc("GET "+p+"/issues/{issue}", s.getIssue)
	mux.HandleFunc("POST "+p+"/issues/merge", s.mergeIssues)
	mux.HandleFunc("POST "+p+"/issues/{issue}/unmerge", s.unmergeIssue)
	mux.HandleFunc("POST "+p+"/issues/{issue}/status", s.setIssueStatus)
	mux.HandleFunc("POST "+p+"/issues/{issue}/notes", s.addIssueNote)
	mux.HandleFunc("GET "+p+"/replays/{replay}/issues", s.replayIssues)
	for path, allow := range map[string]string{
		p + "/issues": "GET, HEAD, OPTIONS", p + "/issues/{issue}": "GET, HEAD, OPTIONS",
		p + "/issues/{issue}/unmerge": "POST, OPTIONS", p + "/issues/{issue}/status": "POST, OPTIONS",
		p + "/issues/{issue}/notes": "POST, OPTIONS", p + "/replays/{replay}/issues": "GET, HEAD, OPTIONS",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			api.WriteError(w, r, fmt.Errorf("%w: %s", derrors.MethodNotAllowed, r.Method), nil)
		})
	}
}

// IssueJSON is one issue as the API shows it. For a view, the counts are
// summed over the groups it contains.
type IssueJSON struct {
	ID            string      `json:"id"`
	Kind          string      `json:"kind"`
	Title         string      `json:"title"`
	Status        string      `json:"status"`
	IsMerge       bool        `json:"is_merge"`
	MergedInto    string      `json:"merged_into,omitempty"`
	TimesSeen     int64       `json:"times_seen"`
	ReplayCount   int64       `json:"replay_count"`
	FirstSeenMS   *int64      `json:"first_seen_ms"`
	LastSeenMS    *int64      `json:"last_seen_ms"`
	GroupCount    int64       `json:"group_count"`
	RecentReplays []uuid.UUID `json:"recent_replays"`
	CreatedAt     time.Time   `json:"created_at"`
}

// IssueDetailJSON is GET .../issues/{issue}: the issue the id shows in (a
// member's id redirects to its top-level merge unless exact=true), its
// direct members, notes and latest occurrences.
type IssueDetailJSON struct {
	IssueJSON
	RequestedID string           `json:"requested_id"`
	Members     []IssueJSON      `json:"members,omitempty"`
	Notes       []NoteJSON       `json:"notes"`
	Occurrences []OccurrenceJSON `json:"occurrences"`
}

// NoteJSON is a note on an issue.
type NoteJSON struct {
	ID        int64     `json:"id"`
	Body      string    `json:"body"`
	Author    string    `json:"author"`
	CreatedAt time.Time `json:"created_at"`
}

// OccurrenceJSON is one stored occurrence.
type OccurrenceJSON struct {
	IssueID     string          `json:"issue_id"` // the top-level issue it shows in
	GroupID     string          `json:"group_id"` // the group it belongs to
	ReplayID    uuid.UUID       `json:"replay_id"`
	SegmentID   int             `json:"segment_id"`
	TimestampMS int64           `json:"timestamp_ms"`
	Kind        string          `json:"kind"`
	Fingerprint string          `json:"fingerprint"`
	Details     json.RawMessage `json:"details"`
}

func issueJSON(is store.Issue) IssueJSON {
	j := IssueJSON{
		ID: store.ShortID(is.ProjectID, is.ID), Kind: is.Kind, Title: is.Title, Status: is.Status, IsMerge: is.IsView,
		TimesSeen: is.TimesSeen, ReplayCount: is.ReplayCount, FirstSeenMS: is.FirstTS, LastSeenMS: is.LastTS,
		GroupCount: is.Leaves, RecentReplays: is.RecentReplays, CreatedAt: is.CreatedAt.UTC(),
	}
	if is.ParentID != nil {
		j.MergedInto = store.ShortID(is.ProjectID, *is.ParentID)
	}
	if j.RecentReplays == nil {
		j.RecentReplays = []uuid.UUID{}
	}
	return j
}

func occurrenceJSON(project int64, o store.IssueOccurrence) OccurrenceJSON {
	return OccurrenceJSON{
		IssueID: store.ShortID(project, o.TopID), GroupID: store.ShortID(project, o.GroupID), ReplayID: o.ReplayID,
		SegmentID: o.SegmentID, TimestampMS: o.TS, Kind: o.Kind, Fingerprint: o.FinalFP, Details: o.Details,
	}
}

func notesJSON(notes []store.Note) []NoteJSON {
	out := make([]NoteJSON, len(notes))
	for i, n := range notes {
		out[i] = NoteJSON{ID: n.ID, Body: n.Body, Author: n.Author, CreatedAt: n.CreatedAt.UTC()}
	}
	return out
}

// issueRequest authorizes r for scope and parses its issue id, if the
// route has one.
func (s *Server) issueRequest(r *http.Request, scope string) (project, issue int64, claims *auth.Claims, err error) {
	project, claims, err = api.Authorize(r, s.verifier, r.PathValue("project"), scope)
	if err != nil {
		return 0, 0, nil, err
	}
	if v := r.PathValue("issue"); v != "" {
		if issue, err = store.ParseShortID(project, v); err != nil {
			return 0, 0, nil, err
		}
	}
	return project, issue, claims, nil
}

// ListIssuesJSON is GET .../issues: top-level issues, newest first.
// next_cursor, when present, fetches the next page.
type ListIssuesJSON struct {
	Issues     []IssueJSON `json:"issues"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

func (s *Server) listIssues(w http.ResponseWriter, r *http.Request) {
	project, _, _, err := s.issueRequest(r, auth.ScopeIssueRead)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	q := r.URL.Query()
	limit := store.MaxIssuePage
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > store.MaxIssuePage {
			api.WriteError(w, r, fmt.Errorf("%w: limit must be 1 to %d", derrors.InvalidArgument, store.MaxIssuePage), nil)
			return
		}
	}
	var before int64
	if v := q.Get("cursor"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before <= 0 {
			api.WriteError(w, r, fmt.Errorf("%w: bad cursor", derrors.InvalidArgument), nil)
			return
		}
	}
	list, err := s.db.ListIssues(r.Context(), project, before, limit)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	out := ListIssuesJSON{Issues: make([]IssueJSON, len(list))}
	for i, is := range list {
		out.Issues[i] = issueJSON(is)
	}
	if len(list) == limit {
		out.NextCursor = strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) getIssue(w http.ResponseWriter, r *http.Request) {
	project, issue, _, err := s.issueRequest(r, auth.ScopeIssueRead)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	d, err := s.db.Issue(r.Context(), project, issue, r.URL.Query().Get("exact") == "true")
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	out := IssueDetailJSON{IssueJSON: issueJSON(d.Issue), RequestedID: store.ShortID(project, d.RequestedID),
		Notes: notesJSON(d.Notes), Occurrences: make([]OccurrenceJSON, len(d.Occurrences))}
	for _, m := range d.Members {
		out.Members = append(out.Members, issueJSON(m))
	}
	for i, o := range d.Occurrences {
		out.Occurrences[i] = occurrenceJSON(project, o)
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) mergeIssues(w http.ResponseWriter, r *http.Request) {
	project, _, _, err := s.issueRequest(r, auth.ScopeIssueWrite)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	var body struct {
		Issues []string `json:"issues"`
	}
	if err := decodeBodyOf(w, r, &body); err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	if len(body.Issues) > store.MaxMergeMembers {
		api.WriteError(w, r, fmt.Errorf("%w: a merge takes at most %d issues", derrors.InvalidArgument, store.MaxMergeMembers), nil)
		return
	}
	ids := make([]int64, len(body.Issues))
	for i, v := range body.Issues {
		if ids[i], err = store.ParseShortID(project, v); err != nil {
			api.WriteError(w, r, err, nil)
			return
		}
	}
	view, err := s.db.Merge(r.Context(), project, ids)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	d, err := s.db.Issue(r.Context(), project, view, true)
	if err != nil {
		// Merged; only the read back failed (or a concurrent unmerge won).
		api.WriteJSON(w, http.StatusCreated, map[string]string{"id": store.ShortID(project, view)})
		return
	}
	api.WriteJSON(w, http.StatusCreated, issueJSON(d.Issue))
}

func (s *Server) unmergeIssue(w http.ResponseWriter, r *http.Request) {
	project, issue, _, err := s.issueRequest(r, auth.ScopeIssueWrite)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	if err := s.db.Unmerge(r.Context(), project, issue); err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setIssueStatus(w http.ResponseWriter, r *http.Request) {
	project, issue, _, err := s.issueRequest(r, auth.ScopeIssueWrite)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	var body struct {
		Status string `json:"status"`
	}
	if err := decodeBodyOf(w, r, &body); err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	at, err := s.db.SetIssueStatus(r.Context(), project, issue, body.Status)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"id": store.ShortID(project, issue), "status": body.Status, "status_at": at.UTC()})
}

func (s *Server) addIssueNote(w http.ResponseWriter, r *http.Request) {
	project, issue, claims, err := s.issueRequest(r, auth.ScopeIssueWrite)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	var body struct {
		Body string `json:"body"`
	}
	if err := decodeBodyOf(w, r, &body); err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	author := claims.Subject
	if author == "" {
		author = "unknown"
	}
	n, err := s.db.AddIssueNote(r.Context(), project, issue, body.Body, author)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	api.WriteJSON(w, http.StatusCreated, notesJSON([]store.Note{n})[0])
}

// ReplayIssuesJSON is GET .../replays/{replay}/issues: the occurrences
// found in one replay, in time order, for the player's timeline.
type ReplayIssuesJSON struct {
	Occurrences []OccurrenceJSON `json:"occurrences"`
}

func (s *Server) replayIssues(w http.ResponseWriter, r *http.Request) {
	project, _, _, err := s.issueRequest(r, auth.ScopeIssueRead)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	replay, err := api.ReplayID(r.PathValue("replay"))
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	occs, err := s.db.ReplayIssues(r.Context(), project, replay)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	out := ReplayIssuesJSON{Occurrences: make([]OccurrenceJSON, len(occs))}
	for i, o := range occs {
		out.Occurrences[i] = occurrenceJSON(project, o)
	}
	api.WriteJSON(w, http.StatusOK, out)
}

// decodeBodyOf reads a request body of at most 64<<10 bytes (api.DecodeJSON).
func decodeBodyOf(w http.ResponseWriter, r *http.Request, v any) error {
	return api.DecodeJSON(w, r, v, 64<<10)
}
