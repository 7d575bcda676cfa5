package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/auth"
)

// interaction is one segment of a checkout page where the buy button is
// clicked five times with no effect and three console errors follow.
func interaction(t0 int64) []byte {
	ev := fmt.Sprintf(`[{"type":4,"timestamp":%[1]d,"data":{"href":"https://shop.example/orders/%[1]d","width":800,"height":600}},
		{"type":2,"timestamp":%[1]d,"data":{"node":{"type":0,"id":1,"childNodes":[{"type":2,"id":2,"tagName":"html","attributes":{},"childNodes":[
			{"type":2,"id":3,"tagName":"body","attributes":{},"childNodes":[{"type":2,"id":4,"tagName":"button","attributes":{"id":"buy"},"childNodes":[]}]}]}]}}}`, t0)
	for i := range 5 {
		ev += fmt.Sprintf(`,{"type":3,"timestamp":%d,"data":{"source":2,"type":2,"id":4,"x":1,"y":1}}`, t0+100+int64(i)*100)
	}
	for i := range 3 {
		ev += fmt.Sprintf(`,{"type":6,"timestamp":%d,"data":{"plugin":"rrweb/console@1","payload":{"level":"error","payload":["boom %d"]}}}`, t0+700+int64(i)*10, i)
	}
	ev += fmt.Sprintf(`,{"type":3,"timestamp":%d,"data":{"source":1,"positions":[]}}]`, t0+3000)
	return []byte(ev)
}

type issueClient struct {
	t   *testing.T
	url string
	tok string
}

// do sends a request and decodes the JSON answer into out (if not nil),
// returning the status.
func (c issueClient) do(method, path, body string, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.tok != "" {
		req.Header.Set("Authorization", "Bearer "+c.tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 && res.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

func TestIssuesAPI(t *testing.T) {
	e := newEnv(t, defaults())
	r1, r2 := uuid.New(), uuid.New()
	pack(t, e.d, 10, []seg{
		{project: 1, replay: r1, id: 0, raw: interaction(1_700_000_000_000), payload: interaction(1_700_000_000_000)},
		{project: 1, replay: r2, id: 0, raw: interaction(1_700_000_100_000), payload: interaction(1_700_000_100_000)},
	})
	rd := issueClient{t, e.url + "/v1/projects/1", token(t, 1, auth.ScopeIssueRead)}
	wr := issueClient{t, e.url + "/v1/projects/1", token(t, 1, auth.ScopeIssueRead, auth.ScopeIssueWrite)}

	// Authorization first.
	for _, tc := range []struct {
		c      issueClient
		method string
		path   string
		want   int
	}{
		{issueClient{t, rd.url, ""}, "GET", "/issues", 401},
		{issueClient{t, rd.url, token(t, 1, auth.ScopeRead)}, "GET", "/issues", 403},
		{issueClient{t, rd.url, token(t, 2, auth.ScopeIssueRead)}, "GET", "/issues", 403},
		{rd, "POST", "/issues/merge", 403},
		{rd, "POST", "/issues/P1-1/notes", 403},
		{rd, "GET", "/issues/P2-1", 400},
		{rd, "GET", "/issues/P1-ZZZ", 404},
		{rd, "DELETE", "/issues/P1-1", 405},
		{rd, "GET", "/issues?limit=1000", 400},
		{wr, "POST", "/issues/P1-1/status", 400}, // no body
	} {
		if got := tc.c.do(tc.method, tc.path, "", nil); got != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}

	var list ListIssuesJSON
	if st := rd.do("GET", "/issues", "", &list); st != 200 {
		t.Fatalf("list: %d", st)
	}
	kinds := map[string]IssueJSON{}
	for _, is := range list.Issues {
		kinds[is.Kind] = is
	}
	if len(list.Issues) != 3 || kinds["dead_click"].TimesSeen != 10 || kinds["rage_click"].ReplayCount != 2 ||
		kinds["console_errors"].TimesSeen != 2 || len(kinds["rage_click"].RecentReplays) != 2 {
		t.Fatalf("issues = %+v; want a dead click (10), a rage click and a console burst (2 each), each in both replays", list.Issues)
	}
	dead, rage := kinds["dead_click"].ID, kinds["rage_click"].ID

	// Keyset pagination walks every issue once.
	var walked []string
	cursor := ""
	for range 5 {
		var page ListIssuesJSON
		rd.do("GET", "/issues?limit=2"+cursor, "", &page)
		for _, is := range page.Issues {
			walked = append(walked, is.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + page.NextCursor
	}
	if len(walked) != 3 {
		t.Errorf("pages walked %v, want 3 issues", walked)
	}

	// Merge; a member's id then redirects to the merge.
	var view IssueJSON
	if st := wr.do("POST", "/issues/merge", fmt.Sprintf(`{"issues":[%q,%q]}`, dead, rage), &view); st != 201 {
		t.Fatalf("merge: %d", st)
	}
	if !view.IsMerge || view.TimesSeen != 12 || view.GroupCount != 2 || view.ReplayCount != 2 {
		t.Errorf("merge = %+v", view)
	}
	var d IssueDetailJSON
	wr.do("GET", "/issues/"+strings.ToLower(dead), "", &d)
	if d.ID != view.ID || d.RequestedID != dead || len(d.Members) != 2 || len(d.Occurrences) != 12 {
		t.Errorf("GET member = id %s requested %s, %d members, %d occurrences", d.ID, d.RequestedID, len(d.Members), len(d.Occurrences))
	}
	// Changes on a member while merged stay with the member.
	if st := wr.do("POST", "/issues/"+dead+"/notes", `{"body":"the buy button has no handler"}`, nil); st != 201 {
		t.Errorf("note: %d", st)
	}
	if st := wr.do("POST", "/issues/"+dead+"/status", `{"status":"resolved"}`, nil); st != 200 {
		t.Errorf("status: %d", st)
	}
	if st := wr.do("POST", "/issues/"+dead+"/status", `{"status":"fixed"}`, nil); st != 400 {
		t.Errorf("bad status: %d", st)
	}
	var before IssueDetailJSON
	wr.do("GET", "/issues/"+dead+"?exact=true", "", &before)
	if before.ID != dead || before.MergedInto != view.ID || before.Status != "resolved" || len(before.Notes) != 1 ||
		before.Notes[0].Author != "test" {
		t.Errorf("exact member = %+v", before)
	}
	if st := wr.do("POST", "/issues/"+dead+"/unmerge", "", nil); st != 400 {
		t.Errorf("unmerge of a plain group: %d, want 400", st)
	}
	if st := wr.do("POST", "/issues/"+view.ID+"/unmerge", "", nil); st != 204 {
		t.Fatalf("unmerge: %d", st)
	}
	var after IssueDetailJSON
	wr.do("GET", "/issues/"+dead, "", &after)
	before.MergedInto = ""
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("member after unmerge (-before +after):\n%s", diff)
	}
	if st := rd.do("GET", "/issues/"+view.ID, "", nil); st != 404 {
		t.Errorf("GET unmerged view: %d, want 404", st)
	}

	// A replay's issues, for the timeline.
	var ri ReplayIssuesJSON
	rd.do("GET", "/replays/"+r1.String()+"/issues", "", &ri)
	if len(ri.Occurrences) != 7 || ri.Occurrences[0].TimestampMS != 1_700_000_000_100 || ri.Occurrences[0].ReplayID != r1 {
		t.Errorf("replay issues = %+v, want 7 from the first click on", ri.Occurrences)
	}

	// Shred: no occurrence names the replay, counts lose its share.
	if _, err := e.d.DB.ShredReplays(context.Background(), 1, []uuid.UUID{r1}, "test"); err != nil {
		t.Fatal(err)
	}
	rd.do("GET", "/replays/"+r1.String()+"/issues", "", &ri)
	var gone IssueDetailJSON
	rd.do("GET", "/issues/"+dead, "", &gone)
	if len(ri.Occurrences) != 0 || gone.TimesSeen != 5 || gone.ReplayCount != 1 || len(gone.Occurrences) != 5 ||
		len(gone.RecentReplays) != 1 || gone.RecentReplays[0] != r2 {
		t.Errorf("after shred: %d occurrences in the replay; issue %+v", len(ri.Occurrences), gone.IssueJSON)
	}
}
