package workload

import (
	"encoding/json"
	"fmt"
	"strings"
)

// PII is the personal data a FormSession types and shows.
type PII struct {
	Name, Email, Card, Phone string
}

// DefaultPII is what FormSession uses by default: a test card number that
// passes the Luhn check, and a phone number in a common notation.
func DefaultPII() PII {
	return PII{Name: "Jane Q. Doe", Email: "jane.doe@example.com", Card: "4242 4242 4242 4242", Phone: "+1 (415) 555-0134"}
}

// Secrets returns the strings of p that must never be stored, in every
// notation the session uses.
func (p PII) Secrets() []string {
	return []string{p.Email, p.Card, strings.ReplaceAll(p.Card, " ", ""), p.Phone}
}

// FormSession returns the segments of a checkout session recorded by rrweb:
// segment 0 has a meta event and a full snapshot of a page with a payment
// form, a "signed in as <email>" line and a pre-filled e-mail input;
// segment 1 types the e-mail, card and phone number into the inputs one
// character at a time (input events carry the whole value, as rrweb
// records them) with clicks in between; segment 2 is the page's reaction:
// text and attribute mutations and an added node that echo the data.
func FormSession(p PII, startMS int64) [][]byte {
	ts := startMS
	next := func() int64 { ts += 40; return ts }
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var segs [][]byte

	// Node ids: 1 document, 2 html, 3 body, 4 h1, 5 its text, 6 p, 7 its
	// text, 8 form#pay, 9 email input, 10 card input, 11 phone input,
	// 12 span.pii, 13 its text, 14 button, 15 its text, 16 prefilled input,
	// 17 status div, 18 its text.
	var s0 []string
	s0 = append(s0, fmt.Sprintf(`{"type":4,"data":{"href":"https://shop.example/checkout","width":1280,"height":800},"timestamp":%d}`, next()))
	snapshot := fmt.Sprintf(`{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":1,"name":"html","publicId":"","systemId":"","id":19},{"type":2,"tagName":"html","attributes":{"lang":"en"},"childNodes":[{"type":2,"tagName":"body","attributes":{"class":"checkout"},"childNodes":[`+
		`{"type":2,"tagName":"h1","attributes":{},"childNodes":[{"type":3,"textContent":"Checkout","id":5}],"id":4},`+
		`{"type":2,"tagName":"p","attributes":{"class":"account"},"childNodes":[{"type":3,"textContent":%s,"id":7}],"id":6},`+
		`{"type":2,"tagName":"form","attributes":{"id":"pay","action":"/pay"},"childNodes":[`+
		`{"type":2,"tagName":"input","attributes":{"type":"email","name":"email","placeholder":"you@example.com"},"childNodes":[],"id":9},`+
		`{"type":2,"tagName":"input","attributes":{"type":"text","name":"card","autocomplete":"cc-number"},"childNodes":[],"id":10},`+
		`{"type":2,"tagName":"input","attributes":{"type":"tel","name":"phone"},"childNodes":[],"id":11},`+
		`{"type":2,"tagName":"span","attributes":{"class":"pii name"},"childNodes":[{"type":3,"textContent":%s,"id":13}],"id":12},`+
		`{"type":2,"tagName":"button","attributes":{"type":"submit"},"childNodes":[{"type":3,"textContent":"Pay now","id":15}],"id":14},`+
		`{"type":2,"tagName":"input","attributes":{"type":"email","name":"receipt","value":%s},"childNodes":[],"id":16}`+
		`],"id":8},`+
		`{"type":2,"tagName":"div","attributes":{"id":"status","title":%s},"childNodes":[{"type":3,"textContent":"Ready","id":18}],"id":17}`+
		`],"id":3}],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":%d}`,
		q("Signed in as "+p.Email), q(p.Name), q(p.Email), q("Contact: "+p.Phone), next())
	s0 = append(s0, snapshot)
	segs = append(segs, []byte("["+strings.Join(s0, ",")+"]"))

	var s1 []string
	click := func(id int) {
		s1 = append(s1, fmt.Sprintf(`{"type":3,"data":{"source":2,"type":2,"id":%d,"x":300,"y":200},"timestamp":%d}`, id, next()))
	}
	typeInto := func(id int, value string) {
		click(id)
		for i := 1; i <= len(value); i++ {
			s1 = append(s1, fmt.Sprintf(`{"type":3,"data":{"source":5,"text":%s,"isChecked":false,"id":%d},"timestamp":%d}`, q(value[:i]), id, next()))
		}
	}
	typeInto(9, p.Email)
	typeInto(10, p.Card)
	typeInto(11, p.Phone)
	segs = append(segs, []byte("["+strings.Join(s1, ",")+"]"))

	var s2 []string
	s2 = append(s2, fmt.Sprintf(`{"type":3,"data":{"source":2,"type":2,"id":14,"x":310,"y":420},"timestamp":%d}`, next()))
	s2 = append(s2, fmt.Sprintf(`{"type":3,"data":{"source":0,"texts":[{"id":18,"value":%s}],"attributes":[{"id":16,"attributes":{"value":%s}},{"id":17,"attributes":{"title":%s}},{"id":10,"attributes":{"data-card":%s}}],"removes":[],"adds":[{"parentId":17,"nextId":null,"node":{"type":2,"tagName":"p","attributes":{"class":"receipt"},"childNodes":[{"type":3,"textContent":%s,"id":21}],"id":20}}]},"timestamp":%d}`,
		q("Receipt sent to "+p.Email), q(p.Email), q("Paid with "+p.Card), q(strings.ReplaceAll(p.Card, " ", "")), q("Charged card "+p.Card+", we will call "+p.Phone), next()))
	segs = append(segs, []byte("["+strings.Join(s2, ",")+"]"))
	return segs
}
