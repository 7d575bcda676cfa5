package segment

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestParseAttributes(t *testing.T) {
	const replay = "3f1e6c2a-9b4d-4e8f-a1c7-5d2b8e9f0a13"
	base := map[string]string{"project_id": "42", "replay_id": replay, "segment_id": "7"}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	without := func(k string) map[string]string {
		m := maps.Clone(base)
		delete(m, k)
		return m
	}
	id := func(project int64, seg int, typ string) ID {
		return ID{ProjectID: project, ReplayID: uuid.MustParse(replay), SegmentID: seg, Type: typ}
	}

	tests := []struct {
		name   string
		attrs  map[string]string
		want   Attributes
		reason string
	}{
		{"defaults", base, Attributes{ID: id(42, 7, "recording"), RetentionDays: 90}, ""},
		{"all set", with("retention_days", "1825", "type", "network"), Attributes{ID: id(42, 7, "network"), RetentionDays: 1825}, ""},
		{"retention 30", with("retention_days", "30"), Attributes{ID: id(42, 7, "recording"), RetentionDays: 30}, ""},
		{"retention 365", with("retention_days", "365"), Attributes{ID: id(42, 7, "recording"), RetentionDays: 365}, ""},
		{"type console", with("type", "console"), Attributes{ID: id(42, 7, "console"), RetentionDays: 90}, ""},
		{"type timeline", with("type", "timeline"), Attributes{ID: id(42, 7, "timeline"), RetentionDays: 90}, ""},
		{"empty optional attributes take defaults", with("retention_days", "", "type", ""), Attributes{ID: id(42, 7, "recording"), RetentionDays: 90}, ""},
		{"unknown attributes ignored", with("sdk", "rrweb/2.0", "googclient_schemaencoding", "JSON"), Attributes{ID: id(42, 7, "recording"), RetentionDays: 90}, ""},
		{"upper-case replay id normalised", with("replay_id", strings.ToUpper(replay)), Attributes{ID: id(42, 7, "recording"), RetentionDays: 90}, ""},
		{"segment 0", with("segment_id", "0"), Attributes{ID: id(42, 0, "recording"), RetentionDays: 90}, ""},
		{"segment max", with("segment_id", "1000000"), Attributes{ID: id(42, 1_000_000, "recording"), RetentionDays: 90}, ""},
		{"project max int64", with("project_id", "9223372036854775807"), Attributes{ID: id(1<<63-1, 7, "recording"), RetentionDays: 90}, ""},
		{"nil map", nil, Attributes{}, ReasonMissingProjectID},

		{"missing project", without("project_id"), Attributes{}, ReasonMissingProjectID},
		{"empty project", with("project_id", ""), Attributes{}, ReasonMissingProjectID},
		{"project zero", with("project_id", "0"), Attributes{}, ReasonBadProjectID},
		{"project negative", with("project_id", "-1"), Attributes{}, ReasonBadProjectID},
		{"project plus sign", with("project_id", "+42"), Attributes{}, ReasonBadProjectID},
		{"project not a number", with("project_id", "acme"), Attributes{}, ReasonBadProjectID},
		{"project with space", with("project_id", " 42"), Attributes{}, ReasonBadProjectID},
		{"project float", with("project_id", "42.0"), Attributes{}, ReasonBadProjectID},
		{"project hex", with("project_id", "0x2a"), Attributes{}, ReasonBadProjectID},
		{"project overflows int64", with("project_id", "9223372036854775808"), Attributes{}, ReasonBadProjectID},

		{"missing replay", without("replay_id"), Attributes{}, ReasonMissingReplayID},
		{"empty replay", with("replay_id", ""), Attributes{}, ReasonMissingReplayID},
		{"replay not a uuid", with("replay_id", "replay-1"), Attributes{}, ReasonBadReplayID},
		{"replay bad hex", with("replay_id", "3f1e6c2a-9b4d-4e8f-a1c7-5d2b8e9f0a1g"), Attributes{}, ReasonBadReplayID},
		{"replay without dashes", with("replay_id", strings.ReplaceAll(replay, "-", "")), Attributes{}, ReasonBadReplayID},
		{"replay braced", with("replay_id", "{"+replay+"}"), Attributes{}, ReasonBadReplayID},
		{"replay urn", with("replay_id", "urn:uuid:"+replay), Attributes{}, ReasonBadReplayID},
		{"replay nil uuid", with("replay_id", "00000000-0000-0000-0000-000000000000"), Attributes{}, ReasonBadReplayID},

		{"missing segment", without("segment_id"), Attributes{}, ReasonMissingSegmentID},
		{"empty segment", with("segment_id", ""), Attributes{}, ReasonMissingSegmentID},
		{"segment negative", with("segment_id", "-1"), Attributes{}, ReasonBadSegmentID},
		{"segment too large", with("segment_id", "1000001"), Attributes{}, ReasonBadSegmentID},
		{"segment huge", with("segment_id", "99999999999999999999"), Attributes{}, ReasonBadSegmentID},
		{"segment not a number", with("segment_id", "seven"), Attributes{}, ReasonBadSegmentID},

		{"retention not a class", with("retention_days", "60"), Attributes{}, ReasonBadRetentionDays},
		{"retention zero", with("retention_days", "0"), Attributes{}, ReasonBadRetentionDays},
		{"retention negative", with("retention_days", "-90"), Attributes{}, ReasonBadRetentionDays},
		{"retention not a number", with("retention_days", "forever"), Attributes{}, ReasonBadRetentionDays},
		// 2^32+90 would wrap to 90 in a 32-bit int.
		{"retention wraps int32", with("retention_days", "4294967386"), Attributes{}, ReasonBadRetentionDays},

		{"type unknown", with("type", "video"), Attributes{}, ReasonBadType},
		{"type wrong case", with("type", "Recording"), Attributes{}, ReasonBadType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAttributes(tt.attrs)
			reason, invalid := Reason(err)
			if err != nil && !invalid {
				t.Fatalf("error %v is not an *InvalidError", err)
			}
			if reason != tt.reason {
				t.Fatalf("reason = %q (err %v), want %q", reason, err, tt.reason)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("attributes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAttributesQuotesLongValues(t *testing.T) {
	_, err := ParseAttributes(map[string]string{"project_id": strings.Repeat("9x", 5000)})
	if err == nil {
		t.Fatal("no error")
	}
	if len(err.Error()) > 200 {
		t.Errorf("error message is %d bytes, want it cut short: %.300s", len(err.Error()), err)
	}
}

func TestReason(t *testing.T) {
	inner := errors.New("boom")
	wrapped := &InvalidError{Reason: ReasonNotJSON, Err: inner}
	tests := []struct {
		name   string
		err    error
		reason string
		ok     bool
	}{
		{"nil", nil, "", false},
		{"plain error", inner, "", false},
		{"invalid error", wrapped, ReasonNotJSON, true},
		{"wrapped invalid error", errors.Join(errors.New("pack"), wrapped), ReasonNotJSON, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, ok := Reason(tt.err)
			if diff := cmp.Diff([]any{tt.reason, tt.ok}, []any{reason, ok}); diff != "" {
				t.Errorf("Reason mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if !errors.Is(wrapped, inner) {
		t.Error("InvalidError does not unwrap to its Err")
	}
	if got, want := wrapped.Error(), "invalid segment: not_json: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
