package replaymeta

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	m := Meta{
		Source: SourceSentry, SourceID: "0123456789abcdef0123456789abcdef", ReplayType: "session",
		SDK: "sentry.javascript.browser/8.0.0", UserAgentFamily: "Chrome",
		URLs: []string{"https://a.example/", "https://a.example/b"}, ErrorIDs: []string{"e1"}, TraceIDs: []string{"t1", "t2"},
	}
	attrs := map[string]string{}
	m.AddTo(attrs)
	if diff := cmp.Diff(m, FromAttributes(attrs)); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if !(Meta{}).IsZero() || m.IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestAttributesFitPubSub(t *testing.T) {
	long := strings.Repeat("é", 2000)
	var urls []string
	for range 500 {
		urls = append(urls, "https://example.com/"+strings.Repeat("x", 50))
	}
	m := Meta{Source: long, SDK: "a\nb", URLs: append([]string{long}, urls...), ErrorIDs: []string{"", "x"}}
	attrs := map[string]string{}
	m.AddTo(attrs)
	for k, v := range attrs {
		if len(v) > maxValue {
			t.Errorf("attribute %s is %d bytes, over %d", k, len(v), maxValue)
		}
	}
	got := FromAttributes(attrs)
	if got.SDK != "ab" {
		t.Errorf("SDK = %q, want control characters dropped", got.SDK)
	}
	if len(got.URLs) == 0 || len(got.URLs) > MaxListLen {
		t.Errorf("kept %d urls", len(got.URLs))
	}
	if diff := cmp.Diff([]string{"x"}, got.ErrorIDs); diff != "" {
		t.Errorf("error ids (-want +got):\n%s", diff)
	}
	// Garbage from another publisher is ignored, not fatal.
	bad := FromAttributes(map[string]string{AttrURLs: "[1,2", AttrErrorIDs: `{"a":1}`})
	if bad.URLs != nil || bad.ErrorIDs != nil {
		t.Errorf("garbage lists parsed: %+v", bad)
	}
}
