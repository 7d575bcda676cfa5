package segment

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// deepShapes are payloads that take deep's paths and each of its exits:
// nesting around deepLimit, numbers and literals it reads or leaves to
// feed, blanks, escapes and errors at every kind of position, and the
// event keys feed matches 8 bytes at a time.
func deepShapes() []string {
	event := func(data string) string {
		return `[{"type":3,"data":` + data + `,"timestamp":1760000000000}]`
	}
	// nest wraps v in k arrays and objects, alternately; bad, if ≥ 0, is
	// the level whose closing bracket is the wrong one.
	nest := func(k, bad int, v string) string {
		var open, close strings.Builder
		for l := range k {
			if l%2 == 0 {
				open.WriteString(`[0,`)
			} else {
				open.WriteString(`{"k":`)
			}
		}
		for l := k - 1; l >= 0; l-- {
			c := "]"
			if l%2 == 1 {
				c = "}"
			}
			if l == bad {
				c = map[string]string{"]": "}", "}": "]"}[c]
			}
			close.WriteString(c)
		}
		return open.String() + v + close.String()
	}
	var shapes []string
	for _, k := range []int{1, 2, 3, 30, 60, 61, 62, 63, 64, 65, 66, 70, 125, 126, 127, 128, 129} {
		shapes = append(shapes, event(nest(k, -1, "1")), event(nest(k, k/2, "1")), event(nest(k, k-1, `"s"`)))
	}
	for _, v := range []string{
		"0", "-0", "01", "-01", "-", "-a", "1.5", "-1.5e3", "1e5", "1E+5", "12345678", "-1234567", "123456789012345678901234",
		"0.0", "0e1", "true", "false", "null", "nul", "tru", "fals", "nullx", "truex", `"\u0041\n"`, `"\x"`, "\"a\x01\"",
		`"` + strings.Repeat("lorem ipsum ", 20) + `"`, `[ ]`, `[1 ,2]`, `[1, 2 ]`, `{ }`, `{"a" :1}`, `{"a": 1}`, "{\"a\":\t1 }",
		`{"":1}`, `{"a\"b":1,"c\\":2}`, `{"a":1,}`, `[1,]`, `{1:2}`, `{"a"}`, `{"a":}`, `[1}`, `{"a":1]`, `[}`, `{]`, `]`,
		`{"x":12,"y":-3,"id":40,"timeOffset":-16}`, `[{"x":0,"y":0},{"x":1440,"y":900}]`,
	} {
		shapes = append(shapes, event(v), event(`{"a":[`+v+`]}`), event(`[[`+v+`,`+v+`]]`))
	}
	for _, ev := range []string{
		`{"type":2,"timestamp":1760000000}`, `{"TYPE":2,"Timestamp":1760000000123}`, `{"type" :2}`, `{"type": 2}`,
		`{"timestamp":99999999999,"type":4}`, `{"timestamp":100000000000}`, `{"timestamp":9999999999999999}`,
		`{"timestamp":99999999999999999}`, `{"timestamp":123456789}`, `{"timestamp":12345678}`, `{"timestamp":0}`,
		`{"type":22}`, `{"type":0}`, `{"type":-2}`, `{"data":1}`, `{"data":{"type":2}}`, `{"typeX":2}`, `{"type":"2"}`,
		`{"timestamp":1760000000000,"timestamp":null}`, `{"timestampX":1}`, `{"data":[1,{"a":[]}],"type":5}`,
	} {
		shapes = append(shapes, "["+ev+"]", "["+ev+","+ev+"]")
	}
	return shapes
}

// TestDeepShapes checks deepShapes against encoding/json, whole and in
// chunks (which cut every token somewhere), at depth limits around
// deepLimit and below an event's members.
func TestDeepShapes(t *testing.T) {
	for _, maxDepth := range []int{0, 2, 3, 4, 62, 63, 64, 65, 128} {
		lim := Limits{MaxDepth: maxDepth}
		for i, raw := range deepShapes() {
			t.Run(fmt.Sprintf("depth%d/%d", maxDepth, i), func(t *testing.T) {
				info, err := Validate([]byte(raw), lim)
				l := lim.withDefaults()
				differential(t, []byte(raw), l, info, err)
				if got, want := ValidJSON([]byte(raw)), json.Valid([]byte(raw)); got != want {
					t.Fatalf("ValidJSON = %v, json.Valid = %v", got, want)
				}
			})
		}
	}
}

// TestSetInt checks setInt's fast paths against setField for digit
// literals of every length, around the seconds/milliseconds boundary.
func TestSetInt(t *testing.T) {
	var lits []string
	for n := 1; n <= 20; n++ {
		lits = append(lits, strings.Repeat("9", n), "1"+strings.Repeat("0", n-1), strings.Repeat("123456789", 3)[:n])
	}
	lits = append(lits, "99999999999", "100000000000", "1760000000", "1760000000123", "2", "7")
	for _, lit := range lits {
		for _, f := range []uint8{fType, fTimestamp} {
			var fast, slow scanner
			fast.setInt(f, []byte(lit))
			slow.setField(f, []byte(lit))
			if fast.typSet != slow.typSet || fast.typOK != slow.typOK || fast.typFull != slow.typFull || fast.typ != slow.typ ||
				fast.tsSet != slow.tsSet || fast.tsOK != slow.tsOK || fast.ts != slow.ts {
				t.Errorf("%s %s: setInt gives type %v/%v/%v/%d ts %v/%v/%d, setField type %v/%v/%v/%d ts %v/%v/%d",
					fieldNames[f], lit, fast.typSet, fast.typOK, fast.typFull, fast.typ, fast.tsSet, fast.tsOK, fast.ts,
					slow.typSet, slow.typOK, slow.typFull, slow.typ, slow.tsSet, slow.tsOK, slow.ts)
			}
		}
	}
}
