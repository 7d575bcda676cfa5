package packer

import (
	"encoding/base64"
	"encoding/json"
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
		`{"message":{"messageId":"a\"b\\","data":"QQ\u003d\u003d"},"subscription":"\\\\\""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
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
	})
}
