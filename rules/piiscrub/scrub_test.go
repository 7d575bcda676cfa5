package piiscrub

import (
	"strings"
	"testing"

	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/workload"
)

func TestMaskPatterns(t *testing.T) {
	s, err := newScrubber(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"mail me: jane.doe+x@mail.example.org.", "mail me: ****.*****@****.*******.***."},
		{"card 4242 4242 4242 4242 ok", "card **** **** **** **** ok"},
		{"card 4242-4242-4242-4241 fails luhn", "card 4242-4242-4242-4241 fails luhn"},
		{"4242424242424242", "****************"},
		{"call +1 (415) 555-0134 now", "call ** ***** ***-**** now"},
		{"order 12345 at 10:30", "order 12345 at 10:30"},
		{"a@b is not an address", "a@b is not an address"},
		{"ts 1700000000000 id", "ts 1700000000000 id"},
		{"call 4155550134", "call **********"},
		{"+44 20 7946 0958", "*** ** **** ****"},
		{"", ""},
	}
	for _, tt := range tests {
		got := s.maskPatterns([]byte(tt.in))
		if got == nil {
			got = []byte(tt.in)
		}
		if string(got) != tt.want {
			t.Errorf("maskPatterns(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSelectors(t *testing.T) {
	for _, bad := range []string{"", "div > p", "[", "#", "a b"} {
		if _, err := parseSelector(bad); err == nil {
			t.Errorf("parseSelector(%q) accepted", bad)
		}
	}
	for _, good := range []string{"input[type=password]", ".pii", "#card", "*[data-private]", "span.pii.name", `a[href^="mailto:"]`} {
		if _, err := parseSelector(good); err != nil {
			t.Errorf("parseSelector(%q): %v", good, err)
		}
	}
}

// TestFormSession runs the rule natively on the checkout recording: no
// secret survives, the page's other text does.
func TestFormSession(t *testing.T) {
	pii := workload.DefaultPII()
	for i, seg := range workload.FormSession(pii, 1_700_000_000_000) {
		out, err := Func(&sdk.Input{Header: sdk.Header{Config: []byte(`{"selectors":[".pii"]}`)}, Events: seg})
		if err != nil {
			t.Fatal(err)
		}
		if !out.Rewritten {
			t.Fatalf("segment %d not rewritten", i)
		}
		got := string(out.Events)
		for _, s := range append(pii.Secrets(), pii.Name) {
			if strings.Contains(got, s) {
				t.Errorf("segment %d still holds %q: %s", i, s, got)
			}
		}
		if i == 0 && (!strings.Contains(got, "Checkout") || !strings.Contains(got, "Signed in as ****.***@*******.***")) {
			t.Errorf("segment 0 lost its text or its masks: %s", got)
		}
	}
}
