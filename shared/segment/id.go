// Package segment defines a replay segment's identity and attributes and
// validates its payload: the encodings we accept, the size caps, and the
// event metadata that reads need later without reopening the segment.
package segment

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/google/uuid"
)

// Types are the segment types a replay may carry.
var Types = []string{"recording", "console", "network", "timeline"}

// DefaultType is the type of a segment whose message names none.
const DefaultType = "recording"

// RetentionClasses are the retention periods, in days, that a segment may ask
// for. Each is its own object prefix and GCS lifecycle rule.
var RetentionClasses = []int{30, 90, 365, 1825}

// DefaultRetentionDays applies when a message names no retention.
const DefaultRetentionDays = 90

// ID identifies one segment. It is bound into the ciphertext as AAD, so a
// sealed segment cannot be moved to another identity.
type ID struct {
	ProjectID int64
	ReplayID  uuid.UUID
	SegmentID int
	Type      string
}

// AAD returns the additional authenticated data for this identity:
// "project|replay|segment|type".
func (id ID) AAD() []byte {
	b := make([]byte, 0, 80)
	b = strconv.AppendInt(b, id.ProjectID, 10)
	b = append(b, '|')
	b = append(b, id.ReplayID.String()...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(id.SegmentID), 10)
	b = append(b, '|')
	b = append(b, id.Type...)
	return b
}

// String returns a form for logs and errors.
func (id ID) String() string {
	return fmt.Sprintf("%d/%s/%d/%s", id.ProjectID, id.ReplayID, id.SegmentID, id.Type)
}

// ValidType reports whether t is a known segment type.
func ValidType(t string) bool { return slices.Contains(Types, t) }

// ValidRetention reports whether days is one of the retention classes.
func ValidRetention(days int) bool { return slices.Contains(RetentionClasses, days) }
