package segment

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/google/uuid"
)

// Pub/Sub attribute names of a segment message. Publishers (SDK gateways,
// loadgen, tests) and the packer must agree on them.
const (
	AttrProjectID     = "project_id"
	AttrReplayID      = "replay_id"
	AttrSegmentID     = "segment_id"
	AttrRetentionDays = "retention_days"
	AttrType          = "type"
)

// MaxSegmentID is the largest segment number a replay may have. A replay is
// cut into segments every few seconds, so a million is days of recording;
// anything above is a broken client.
const MaxSegmentID = 1_000_000

// Attributes is what a segment message's attributes say about it.
type Attributes struct {
	ID            ID
	RetentionDays int
}

// ParseAttributes reads the attributes of a segment message. project_id,
// replay_id and segment_id are required; retention_days and type default to
// DefaultRetentionDays and DefaultType. An attribute set to the empty string
// counts as absent. Unknown attributes are ignored so that publishers can add
// their own. Every error is an *InvalidError.
func ParseAttributes(attrs map[string]string) (Attributes, error) {
	var a Attributes

	s, ok := attrs[AttrProjectID]
	if !ok || s == "" {
		return Attributes{}, invalid(ReasonMissingProjectID, errors.New("attribute project_id is missing"))
	}
	p, ok := parseDecimal(s, math.MaxInt64)
	if !ok || p == 0 {
		return Attributes{}, invalid(ReasonBadProjectID, fmt.Errorf("project_id %s is not a positive 64-bit integer", quote(s)))
	}
	a.ID.ProjectID = p

	s, ok = attrs[AttrReplayID]
	if !ok || s == "" {
		return Attributes{}, invalid(ReasonMissingReplayID, errors.New("attribute replay_id is missing"))
	}
	// uuid.Parse also takes the 32-digit, braced and urn: forms; accept only
	// the canonical one so that one replay has one spelling everywhere.
	r, err := uuid.Parse(s)
	if len(s) != 36 || err != nil {
		return Attributes{}, invalid(ReasonBadReplayID, fmt.Errorf("replay_id %s is not a UUID in canonical form", quote(s)))
	}
	if r == uuid.Nil {
		return Attributes{}, invalid(ReasonBadReplayID, errors.New("replay_id is the nil UUID"))
	}
	a.ID.ReplayID = r

	s, ok = attrs[AttrSegmentID]
	if !ok || s == "" {
		return Attributes{}, invalid(ReasonMissingSegmentID, errors.New("attribute segment_id is missing"))
	}
	n, ok := parseDecimal(s, MaxSegmentID)
	if !ok {
		return Attributes{}, invalid(ReasonBadSegmentID, fmt.Errorf("segment_id %s is not an integer in [0, %d]", quote(s), MaxSegmentID))
	}
	a.ID.SegmentID = int(n)

	a.RetentionDays = DefaultRetentionDays
	if s := attrs[AttrRetentionDays]; s != "" {
		d, ok := parseDecimal(s, math.MaxInt32)
		if !ok || !ValidRetention(int(d)) {
			return Attributes{}, invalid(ReasonBadRetentionDays, fmt.Errorf("retention_days %s is not one of %v", quote(s), RetentionClasses))
		}
		a.RetentionDays = int(d)
	}

	a.ID.Type = DefaultType
	if s := attrs[AttrType]; s != "" {
		if !ValidType(s) {
			return Attributes{}, invalid(ReasonBadType, fmt.Errorf("type %s is not one of %v", quote(s), Types))
		}
		a.ID.Type = s
	}
	return a, nil
}

// parseDecimal parses a decimal integer in [0, limit] written with digits
// only: no sign, no spaces, no base prefix.
func parseDecimal(s string, limit int64) (int64, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n <= limit
}
