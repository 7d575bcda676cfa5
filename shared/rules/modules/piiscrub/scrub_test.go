package piiscrub

import (
	"encoding/json"
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

// TestRawScrubKeepsJSON: the one-pass scrubber masks inside strings only,
// whatever escapes they hold, so its output is valid JSON of the input's
// length; malformed or too deep input is an error, not a panic.
func TestRawScrubKeepsJSON(t *testing.T) {
	tests := []struct {
		name, in string
		absent   []string
	}{
		{"escapes", `[{"type":3,"data":{"source":0,"texts":[{"id":1,"value":"say \"hi\" to jane@example.com\n4242 4242 4242 4242 \u00e9"}]},"timestamp":1}]`, []string{"jane@", "4242"}},
		{"input", `[{"type":3,"data":{"source":5,"text":"a\\b\"c","id":7},"timestamp":1}]`, []string{`a\\b`}},
		{"selector", `[{"type":2,"data":{"node":{"type":2,"tagName":"div","attributes":{"class":"x pii","value":"v1"},"childNodes":[{"type":3,"textContent":"Jane","id":3}],"id":2}}},{"type":3,"data":{"source":0,"texts":[{"id":3,"value":"Joan"}],"adds":[{"parentId":2,"node":{"type":3,"textContent":"Jim","id":4}}]}}]`, []string{"Jane", "Joan", "Jim", "v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Func(&sdk.Input{Header: sdk.Header{Config: []byte(`{"selectors":[".pii"]}`)}, Events: []byte(tt.in)})
			if err != nil {
				t.Fatal(err)
			}
			if !out.Rewritten || len(out.Events) != len(tt.in) || !json.Valid(out.Events) {
				t.Fatalf("output %q: rewritten %v, valid %v, length %d of %d", out.Events, out.Rewritten, json.Valid(out.Events), len(out.Events), len(tt.in))
			}
			for _, a := range tt.absent {
				if strings.Contains(string(out.Events), a) {
					t.Errorf("%q survived: %s", a, out.Events)
				}
			}
		})
	}
	for _, bad := range []string{`[`, `[{"a":}]`, `{"not":"array"}`, `["unterminated]`, strings.Repeat("[", 5000) + strings.Repeat("]", 5000)} {
		if _, err := Func(&sdk.Input{Events: []byte(bad)}); err == nil {
			t.Errorf("scrub of %.40q succeeded", bad)
		}
	}
}

// TestWordScans checks the 8-byte scans against byte-by-byte ones on every
// byte value in every position.
func TestWordScans(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 11; pos++ {
			b := []byte("xxxxxxxxxxxx")
			b[pos] = byte(c)
			wantNum, wantAt := len(b), len(b)
			if isDigit(byte(c)) || c == '+' || c == '(' {
				wantNum = pos
			}
			if c == '@' {
				wantAt = pos
			}
			if got := nextNum(b, 0); got != wantNum {
				t.Fatalf("nextNum with %#x at %d = %d, want %d", c, pos, got, wantNum)
			}
			if got := nextAt(b, 0); got != wantAt {
				t.Fatalf("nextAt with %#x at %d = %d, want %d", c, pos, got, wantAt)
			}
		}
	}
}
