package ingest

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
)

// Frame does to one request what Ingest does to it besides looking the key
// up, applying the rate limits, numbering posthog-js batches and
// publishing: it reads the body (undoing a Content-Encoding), parses it as
// its path says (a Sentry envelope, a posthog-js batch, an rrweb segment),
// checks it and builds each segment's message. It returns the messages'
// payloads. `replayvault-dev bench` measures Ingest's CPU per segment with
// it; the handlers are the same steps around the key and the publish.
func (s *Server) Frame(r *http.Request) ([][]byte, error) {
	body, err := s.readBody(r)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var msgs []message
	switch {
	case len(parts) == 3 && parts[0] == "api" && parts[2] == "envelope":
		project, err := api.ProjectID(parts[1])
		if err != nil {
			return nil, badRequest("bad_project", "project id in the path must be a positive integer")
		}
		h, items, err := parseEnvelope(body)
		if err != nil {
			return nil, err
		}
		if msgs, err = s.sentryMessages(r, project, h, items); err != nil {
			return nil, err
		}
	case len(parts) == 1 && parts[0] == "s":
		dec := &decoder{s: s, budget: s.cfg.MaxDecompressed}
		batch, _, err := dec.posthogBody(r, body)
		if err != nil {
			return nil, err
		}
		sessions, err := dec.snapshotSessions(batch, r.Header.Get("User-Agent"))
		if err != nil {
			return nil, err
		}
		for _, ss := range sessions {
			data := ss.data
			if len(data) > 1<<20 {
				data = segment.Compress(data)
			}
			msgs = append(msgs, s.segmentMessage(0, ss.replay, 0, ss.meta, data))
		}
	case len(parts) == 7 && parts[0] == "v1" && parts[1] == "projects" && parts[3] == "replays" && parts[5] == "segments":
		project, err := api.ProjectID(parts[2])
		if err != nil {
			return nil, badRequest("bad_project", "project id in the path must be a positive integer")
		}
		replay, err := api.ReplayID(parts[4])
		if err != nil {
			return nil, badRequest("bad_replay_id", "replay id in the path must be a UUID")
		}
		seg, err := strconv.Atoi(parts[6])
		if err != nil || seg < 0 || seg > segment.MaxSegmentID {
			return nil, badRequest("bad_segment_id", "segment number in the path must be an integer in [0, %d]", segment.MaxSegmentID)
		}
		if err := s.checkPayload(body, "segment"); err != nil {
			return nil, err
		}
		meta := replaymeta.Meta{Source: replaymeta.SourceRRWeb, SourceID: replay.String(), UserAgentFamily: userAgentFamily(r.Header.Get("User-Agent"))}
		msgs = append(msgs, s.segmentMessage(project, replay, seg, meta, body))
	default:
		return nil, errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.data
	}
	return out, nil
}
