package direct

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"strings"
	"testing"
)

// block builds a block by hand, so tests can write what AppendBlock
// refuses to: raw is id, then key, value, key, value, …
func block(count int, raw ...string) []byte {
	var inner []byte
	inner = binary.BigEndian.AppendUint16(inner, uint16(len(raw[0])))
	inner = append(inner, raw[0]...)
	inner = binary.BigEndian.AppendUint16(inner, uint16(count))
	for _, s := range raw[1:] {
		inner = binary.BigEndian.AppendUint16(inner, uint16(len(s)))
		inner = append(inner, s...)
	}
	b := append([]byte(magic), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[4:], uint32(len(inner)))
	return append(b, inner...)
}

var segAttrs = map[string]string{"project_id": "1", "replay_id": "0d6bf0a4-9b4c-4a49-8d57-0e9c0b3e4b8f", "segment_id": "7"}

func TestRoundTrip(t *testing.T) {
	for _, attrs := range []map[string]string{
		nil,
		{},
		segAttrs,
		{"url": "http://x/\"quoted\"\n\u2028</script>", "empty": "", "ключ": "значение"},
		func() map[string]string {
			m := map[string]string{}
			for i := range MaxAttributes {
				m[strings.Repeat(string(rune('a'+i%26)), 1+i%MaxKeyBytes)+string(rune('A'+i/26))] = strings.Repeat("v", MaxValueBytes)
			}
			return m
		}(),
	} {
		for _, payload := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0, 0xff, '"'}, 10_000)} {
			b, err := AppendBlock(nil, "direct-0123abcd", attrs)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxBlockBytes {
				t.Errorf("block of %d bytes, over MaxBlockBytes %d", len(b), MaxBlockBytes)
			}
			body := append(b, payload...)
			id, got, data, err := Decode(body)
			if err != nil {
				t.Fatalf("%d attributes, %d bytes: %v", len(attrs), len(payload), err)
			}
			if id != "direct-0123abcd" || !maps.Equal(got, attrs) || !bytes.Equal(data, payload) {
				t.Errorf("%d attributes, %d bytes: decoded id %q, %d attributes, %d bytes", len(attrs), len(payload), id, len(got), len(data))
			}
			// The payload is the body's own bytes.
			if len(data) > 0 && &data[0] != &body[len(b)] {
				t.Errorf("payload is a copy")
			}
		}
	}
}

// TestDecodeRefuses: every deviation from the layout is ErrMalformed, and
// no error text holds the bytes of an id, key, value or payload.
func TestDecodeRefuses(t *testing.T) {
	const secret = "SECRET-MARKER"
	good := block(3, "m1", "project_id", "1", "replay_id", "0d6bf0a4-9b4c-4a49-8d57-0e9c0b3e4b8f", "segment_id", "7")
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"magic only", []byte(magic)},
		{"wrong magic", append([]byte("RVD2"), good[4:]...)},
		{"a push envelope", []byte(`{"message":{"data":"` + secret + `"}}`)},
		{"block longer than the body", good[:len(good)-1]},
		{"block length over the limit", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint32(b[4:], MaxBlockBytes)
			return append(b, make([]byte, MaxBlockBytes)...)
		}()},
		{"block length huge", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint32(b[4:], 1<<32-1)
			return b
		}()},
		{"no id", block(0, "")},
		{"id too long", block(0, strings.Repeat("i", MaxIDBytes+1))},
		{"id with a space", block(0, "a b")},
		{"id with a newline", block(0, "a\n"+secret)},
		{"id not ASCII", block(0, "é")},
		{"count larger than the attributes", block(4, "m1", "project_id", "1", "replay_id", "x", "segment_id", "7")},
		{"count smaller than the attributes", block(2, "m1", "project_id", "1", "replay_id", "x", "segment_id", "7")},
		{"count over the limit", block(MaxAttributes+1, "m1")},
		{"duplicate key", block(2, "m1", "replay_id", secret, "replay_id", secret)},
		{"empty key", block(1, "m1", "", secret)},
		{"key too long", block(1, "m1", strings.Repeat("k", MaxKeyBytes+1), secret)},
		{"value too long", block(1, "m1", "url", strings.Repeat(secret, MaxValueBytes/len(secret)+1))},
		{"key not UTF-8", block(1, "m1", "\xff"+secret, "v")},
		{"value not UTF-8", block(1, "m1", "url", secret+"\xc3")},
		{"key cut short", block(1, "m1", "project_id")[:20]},
		{"value length cut", func() []byte {
			b := block(1, "m1", "k")
			return b
		}()},
	}
	for _, tc := range tests {
		_, _, _, err := Decode(append(tc.body, secret...))
		if tc.name == "block longer than the body" {
			// With the marker appended the block fits: cut the body itself.
			_, _, _, err = Decode(tc.body)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tc.name, err)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error holds request bytes: %v", tc.name, err)
		}
	}
}

func TestAppendBlockRefuses(t *testing.T) {
	many := map[string]string{}
	for i := range MaxAttributes + 1 {
		many[string(rune('a'+i%26))+string(rune('A'+i/26))] = ""
	}
	for _, tc := range []struct {
		name  string
		id    string
		attrs map[string]string
	}{
		{"no id", "", nil},
		{"id with a space", "a b", nil},
		{"too many attributes", "m", many},
		{"empty key", "m", map[string]string{"": "v"}},
		{"key too long", "m", map[string]string{strings.Repeat("k", MaxKeyBytes+1): ""}},
		{"value too long", "m", map[string]string{"k": strings.Repeat("v", MaxValueBytes+1)}},
		{"value not UTF-8", "m", map[string]string{"k": "\xff"}},
	} {
		if _, err := AppendBlock(nil, tc.id, tc.attrs); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tc.name, err)
		}
	}
}

// FuzzDecode: Decode never panics; what it accepts is within the limits,
// its payload is the body's tail, and the decoded message encodes back to
// a body that decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, attrs := range []map[string]string{nil, segAttrs, {"url": "http://x/\u2028"}} {
		b, err := AppendBlock(nil, "direct-1", attrs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(b, `[{"type":4}]`...))
	}
	f.Add(block(2, "m1", "k", "v", "k", "w"))
	f.Add(block(1, "m1", "k"))
	f.Add([]byte(magic + "\x00\x00\x00\x04\x00\x01x\x00"))
	f.Add([]byte(`{"message":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		id, attrs, payload, err := Decode(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if len(attrs) > MaxAttributes || len(body)-len(payload) > MaxBlockBytes || !bytes.HasSuffix(body, payload) {
			t.Fatalf("accepted out of bounds: %d attributes, block of %d bytes", len(attrs), len(body)-len(payload))
		}
		b, err := AppendBlock(nil, id, attrs)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		id2, attrs2, payload2, err := Decode(append(b, payload...))
		if err != nil || id2 != id || !maps.Equal(attrs2, attrs) || !bytes.Equal(payload2, payload) {
			t.Fatalf("re-encoded message decodes differently: %v", err)
		}
	})
}
