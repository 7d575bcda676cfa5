package segment

import (
	"errors"
	"strconv"
)

// Reasons name why a segment is permanently invalid. They are stable
// snake_case codes: the packer publishes a rejected message to the reject
// topic with its reason as the reject_reason attribute, so dashboards and
// alerts key on them. Never rename one; add a new one instead.
const (
	ReasonMissingProjectID     = "missing_project_id"
	ReasonBadProjectID         = "bad_project_id"
	ReasonMissingReplayID      = "missing_replay_id"
	ReasonBadReplayID          = "bad_replay_id"
	ReasonMissingSegmentID     = "missing_segment_id"
	ReasonBadSegmentID         = "bad_segment_id"
	ReasonBadRetentionDays     = "bad_retention_days"
	ReasonBadType              = "bad_type"
	ReasonEmptyPayload         = "empty_payload"
	ReasonPayloadTooLarge      = "payload_too_large"
	ReasonBadCompression       = "bad_compression"
	ReasonDecompressedTooLarge = "decompressed_too_large"
	ReasonNotJSON              = "not_json"
	ReasonNotArray             = "not_array"
	ReasonBadEvent             = "bad_event"
	ReasonTooDeep              = "too_deep"
)

// InvalidError reports input that can never become valid: retrying the
// message cannot help, so the packer rejects it instead of nacking it.
type InvalidError struct {
	// Reason is one of the Reason* codes.
	Reason string
	// Located says whether Offset and Path are set: whether the fault is
	// at a place in the JSON.
	Located bool
	// Offset is the byte offset in the decompressed JSON where the fault
	// was found.
	Offset int64
	// Path is the JSON path of the element at fault, such as
	// "[17].timestamp" or "[3].data.#2[0]" (keys other than an event's
	// type, timestamp and data are shown by position, .#2 being the third
	// member, so that no payload bytes appear); "" at the top level.
	Path string
	// Err says what exactly is wrong; it may wrap the underlying error
	// (a gzip checksum error, say). It never quotes payload bytes.
	Err error
}

// Error returns "invalid segment: reason[ at byte N[ in path]]: detail".
func (e *InvalidError) Error() string {
	s := "invalid segment: " + e.Reason
	if e.Located {
		s += " at byte " + strconv.FormatInt(e.Offset, 10)
		if e.Path != "" {
			s += " in " + e.Path
		}
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *InvalidError) Unwrap() error { return e.Err }

// Reason returns the reason code of the first *InvalidError in err's chain,
// and whether there is one.
func Reason(err error) (string, bool) {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason, true
	}
	return "", false
}

func invalid(reason string, err error) *InvalidError {
	return &InvalidError{Reason: reason, Err: err}
}

// quote quotes an untrusted value for an error message, cut short so that a
// hostile attribute cannot blow up logs.
func quote(s string) string {
	const keep = 64
	if len(s) > keep {
		return strconv.Quote(s[:keep]) + "..."
	}
	return strconv.Quote(s)
}
