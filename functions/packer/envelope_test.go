package packer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	mrand "math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodePush checks decodePush against encoding/json, which the SDK's
// DataAs used: the same bodies are accepted, with the same result, and the
// body is left as it came.
func FuzzDecodePush(f *testing.F) {
	payload := base64.StdEncoding.EncodeToString([]byte(`[{"type":4,"timestamp":1}]`))
	for _, s := range []string{
		`{"subscription":"projects/p/subscriptions/s","message":{"messageId":"1","attributes":{"project_id":"7","segment_id":"3"},"data":"` + payload + `"}}`,
		`{"message":{"data":"` + payload + `","data":null}}`, `{"MESSAGE":{"DATA":"QQ==","MessageID":"x"}}`,
		`{"message":{"data":"QQ="}}`, `{"message":{"data":"Q\/=="}}`, `{"message":{"data":[1,2,255]}}`, `{"message":{"data":[256]}}`,
		`{"message":{"attributes":{"a":"1"},"attributes":{"b":null}}}`, `{"message":{"attributes":{"a":1}}}`,
		`{"message":{"messageId":7}}`, `{"message":[]}`, `{"message":null}`, `null`, `"just a string"`, `[]`, `{}`,
		`{"message":{"data":"QQ=="}} x`, `{"me\u0073sage":{"d\u0061ta":"QQ=="}}`, `{"subscription":{"a":[1,{"b":"}"}]}}`,
		`{"message":{"messageId":"\ud800"}}`, ``, ` `,
		// Long enough for decodeBase64's eight-at-a-time loop: with an
		// escaped newline (skipped), a bad character, and padding inside.
		`{"message":{"data":"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MTIzNDU2Nzg5\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MTIzNDU2Nzg5"}}`,
		`{"message":{"data":"QUJDREVGR0hJSktMTU5P!FFSU1RVVldYWVo0MTIzNDU2Nzg5"}}`,
		`{"message":{"data":"QUJDREVGR0hJSktM==5PUFFSU1RVVldYWVo0MTIzNDU2Nzg5"}}`,
		`{"message":{"messageId":"a\"b\\","data":"QQ\u003d\u003d"},"subscription":"\\\\\""}`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range predecodeCases() {
		f.Add([]byte(s))
	}
	f.Fuzz(sameAsJSON)
}

// sameAsJSON fails t unless decodePush accepts body exactly when
// json.Unmarshal does, with the same result, leaving body as it came.
func sameAsJSON(t *testing.T, body []byte) {
	t.Helper()
	orig := string(body)
	var want, got pushData
	werr := json.Unmarshal(body, &want)
	gerr := decodePush(body, &got)
	if string(body) != orig {
		t.Fatal("decodePush modified the body")
	}
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("json.Unmarshal: %v; decodePush: %v", werr, gerr)
	}
	if werr == nil {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("decodePush differs from json.Unmarshal (-json +decodePush):\n%s", diff)
		}
	}
}

// predecodeCases are bodies with payloads long enough for predecode,
// around what its argument rests on: where `"data":"` is, what follows the
// payload, and what the payload holds.
func predecodeCases() []string {
	l := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("rrweb events "), 100)) // 1,732 characters
	return []string{
		`{"message":{"data":"` + l + `","messageId":"1"},"subscription":"s"}`,
		`{"message":{"data":"` + l + `"}} x`,
		`{"message":{"data":"` + l + `"`,
		`{"message":{"data":"` + l[:800] + `\n` + l[800:] + `"}}`,
		`{"message":{"data":"` + l[:800] + "\n" + l[800:] + `"}}`,
		`{"message":{"data":"` + l[:len(l)-4] + "\r" + l[len(l)-3:] + `"}}`,
		`{"message":{"data":"` + l[:800] + `==` + l[802:] + `"}}`,
		`{"message":{"data":"` + l[:len(l)-1] + `"}}`,
		`{"message":{"data":"` + l + `\u0041"}}`,
		`{"message":{"x\"data":"` + l + `","data":"QQ=="}}`,
		`{"message":{"messageId":"\"data":"` + l + `"}}`,
		`{"message":{"data":"` + l + `","data":"QQ=="}}`,
		`{"message":{"data":"QQ==","data":"` + l + `"}}`,
		`{"subscription":"s","data":"` + l + `"}`,
		`{"message":{"data":"` + l + `"},"message":null}`,
		`["data":"` + l + `"]`,
		`{"message":{"attributes":{"a":"data"},"data":"` + l + `"}}`,
	}
}

// TestPredecode checks decodePush against encoding/json on bodies whose
// payload predecode decodes (or turns down), and that it takes the usual
// push.
func TestPredecode(t *testing.T) {
	cases := predecodeCases()
	if _, ok := predecode([]byte(cases[0])); !ok {
		t.Fatal("predecode turned down a plain push")
	}
	for _, body := range cases {
		sameAsJSON(t, []byte(body))
	}
}

// TestDecodeBase64 checks decodeBase64 against base64.StdEncoding.Decode:
// every length up to 200 bytes, and each of those with a byte that is no
// base64 character (or a newline, or padding) at every position.
func TestDecodeBase64(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	same := func(src []byte) {
		t.Helper()
		want := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
		got := make([]byte, len(want))
		wn, werr := base64.StdEncoding.Decode(want, src)
		gn, gerr := decodeBase64(got, src)
		if (werr == nil) != (gerr == nil) || (werr == nil && !bytes.Equal(got[:gn], want[:wn])) {
			t.Fatalf("decodeBase64(%q) = %d, %v; base64 says %d, %v", src, gn, gerr, wn, werr)
		}
	}
	for n := range 200 {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		enc := []byte(base64.StdEncoding.EncodeToString(data))
		same(enc)
		for j := range enc {
			for _, c := range []byte{'!', '\n', '\r', '=', '-', '_', '"', 0, 0xff} {
				bad := bytes.Clone(enc)
				bad[j] = c
				same(bad)
			}
		}
	}
}

// BenchmarkDecodeBase64 compares decodeBase64 with the standard decoder on
// a 30 KB payload (the bench corpus's mean), in the same run.
func BenchmarkDecodeBase64(b *testing.B) {
	data := make([]byte, 30<<10)
	r := mrand.New(mrand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	enc := []byte(base64.StdEncoding.EncodeToString(data))
	out := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
	for _, c := range []struct {
		name   string
		decode func(dst, src []byte) (int, error)
	}{{"std", base64.StdEncoding.Decode}, {"decodeBase64", decodeBase64}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				if _, err := c.decode(out, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodePush decodes a push of a 30 KB payload as Pub/Sub writes
// it (predecode takes its payload) and the same push with a space after
// the colon (it does not: the body is scanned whole first), in one run.
func BenchmarkDecodePush(b *testing.B) {
	data := make([]byte, 30<<10)
	r := mrand.New(mrand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	payload := base64.StdEncoding.EncodeToString(data)
	for _, c := range []struct{ name, sep string }{{"predecoded", `"data":"`}, {"scanned", `"data": "`}} {
		body := []byte(`{"message":{"attributes":{"project_id":"1","replay_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","segment_id":"3"},` +
			c.sep + payload + `","messageId":"123","publishTime":"2026-11-30T10:00:00Z"},"subscription":"projects/p/subscriptions/pack"}`)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodePush(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
