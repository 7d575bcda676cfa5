package ingest

import (
	"net/http"
	"strconv"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
)

// rrwebSegment answers POST /v1/projects/{project}/replays/{replay}/segments/{segment}:
// one segment recorded by rrweb, the body a JSON array of events, plain or
// gzip, zlib or zstd compressed (as Pack accepts), sent with fetch or
// navigator.sendBeacon. The key comes in ?key= (sendBeacon cannot set
// headers) or X-Replayvault-Key.
func (s *Server) rrwebSegment(w http.ResponseWriter, r *http.Request) {
	project, err := api.ProjectID(r.PathValue("project"))
	if err != nil {
		writeError(w, r, badRequest("bad_project", "project id in the path must be a positive integer"))
		return
	}
	k, err := s.admit(r.Context(), r, urlKey(r), project)
	allowOrigin(w, r, k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	replay, err := api.ReplayID(r.PathValue("replay"))
	if err != nil {
		writeError(w, r, badRequest("bad_replay_id", "replay id in the path must be a UUID"))
		return
	}
	segStr := r.PathValue("segment")
	seg, err := strconv.Atoi(segStr)
	if err != nil || seg < 0 || seg > segment.MaxSegmentID || strconv.Itoa(seg) != segStr {
		writeError(w, r, badRequest("bad_segment_id", "segment number in the path must be an integer in [0, %d]", segment.MaxSegmentID))
		return
	}
	body, err := s.readBody(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.checkPayload(body, "segment"); err != nil {
		writeError(w, r, err)
		return
	}
	meta := replaymeta.Meta{
		Source:          replaymeta.SourceRRWeb,
		SourceID:        replay.String(),
		SDK:             clipQuery(r.URL.Query().Get("sdk")),
		UserAgentFamily: userAgentFamily(r.Header.Get("User-Agent")),
	}
	if u := clipQuery(r.URL.Query().Get("url")); u != "" {
		meta.URLs = []string{u}
	}
	if err := s.publish(r.Context(), []message{s.segmentMessage(project, replay, seg, meta, body)}); err != nil {
		writeError(w, r, err)
		return
	}
	writeOK(w, struct{}{})
}

func clipQuery(s string) string {
	if len(s) > 512 {
		return ""
	}
	return s
}
