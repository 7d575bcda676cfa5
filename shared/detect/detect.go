// Package detect finds replay issues in one segment's rrweb events: rage
// clicks, dead clicks, bursts of console errors, and failed or slow network
// requests. It is the edge half of the issue platform: Pack runs it on every
// segment it stores, with bounded work, and computes two fingerprints per
// occurrence: an edge fingerprint that throttles and a final fingerprint
// that groups (see FinalFingerprint).
package detect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// Kinds of occurrence.
const (
	RageClick     = "rage_click"
	DeadClick     = "dead_click"
	ConsoleErrors = "console_errors"
	FailedRequest = "failed_request"
	SlowRequest   = "slow_request"
)

// RuleVersion is the version of FinalFingerprint's rule. A later rule gets
// a new version; groups it would join are merged as views, so occurrences
// are never rewritten.
const RuleVersion = 1

// Rules are the detection thresholds. A zero field takes its default.
type Rules struct {
	RageClicks      int   // clicks on one node within RageWindowMS (3)
	RageWindowMS    int64 // (1000)
	DeadWindowMS    int64 // no mutation or navigation this long after a click (1000)
	ConsoleBurst    int   // console errors within ConsoleWindowMS (3)
	ConsoleWindowMS int64 // (5000)
	SlowRequestMS   int64 // a request at least this long is slow (3000)
}

// Limits bound one segment's detection work.
type Limits struct {
	MaxInput       int // bytes of JSON; larger segments are not scanned (16 MiB)
	MaxEvents      int // events scanned (100,000)
	MaxNodes       int // snapshot nodes remembered for selectors (100,000)
	MaxOccurrences int // occurrences returned (200)
}

func (r Rules) withDefaults() Rules {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	if r.RageClicks <= 0 {
		r.RageClicks = 3
	}
	if r.ConsoleBurst <= 0 {
		r.ConsoleBurst = 3
	}
	def(&r.RageWindowMS, 1000)
	def(&r.DeadWindowMS, 1000)
	def(&r.ConsoleWindowMS, 5000)
	def(&r.SlowRequestMS, 3000)
	return r
}

func (l Limits) withDefaults() Limits {
	if l.MaxInput <= 0 {
		l.MaxInput = 16 << 20
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = 100_000
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = 100_000
	}
	if l.MaxOccurrences <= 0 {
		l.MaxOccurrences = 200
	}
	return l
}

// Occurrence is one detected issue occurrence.
type Occurrence struct {
	Kind    string
	TS      int64 // ms since epoch
	Title   string
	Details Details
	EdgeFP  string
	FinalFP string
}

// Details are what an occurrence keeps: small, and enough to recompute the
// final fingerprint under a later rule.
type Details struct {
	Page       string `json:"page,omitempty"`    // URL path template of the page
	Target     string `json:"target,omitempty"`  // selector path, or node:ID without a snapshot
	Request    string `json:"request,omitempty"` // METHOD host/path-template
	Status     int    `json:"status,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	Count      int    `json:"count,omitempty"`
	Message    string `json:"message,omitempty"` // template of the first console error
}

// JSON returns d as JSON.
func (d Details) JSON() json.RawMessage {
	b, _ := json.Marshal(d)
	return b
}

// errNotEvents is Detect's only error. fastjson nests at most 300 levels, so
// a valid segment whose snapshot is deeper gets it too: Pack then skips
// detection for the segment.
var errNotEvents = errors.New("detect: not a JSON array of events within the parser's depth limit")

// parsers reuse their value caches: a fresh parser spends most of its time
// growing them. A pooled parser keeps memory in proportion to the largest
// segment it parsed (at most Limits.MaxInput of JSON); the GC empties the
// pool.
var parsers fastjson.ParserPool

// Detect scans raw, a JSON array of rrweb events, and returns the
// occurrences found, in time order. Work is bounded by lim; input over
// lim.MaxInput is not scanned. An error means raw is not an event array.
func Detect(raw []byte, rules Rules, lim Limits) ([]Occurrence, error) {
	rules, lim = rules.withDefaults(), lim.withDefaults()
	if len(raw) > lim.MaxInput {
		return nil, nil
	}
	p := parsers.Get()
	defer parsers.Put(p)
	// The parser's errors quote the input: never pass them on.
	v, err := p.ParseBytes(raw)
	if err != nil {
		return nil, errNotEvents
	}
	events, err := v.Array()
	if err != nil {
		return nil, errNotEvents
	}
	if len(events) > lim.MaxEvents {
		events = events[:lim.MaxEvents]
	}
	s := newScan(rules, lim)
	for _, e := range events {
		s.event(e, timestamp(e), false)
	}
	return s.finish(), nil
}

// RawTypes are the rrweb event types whose JSON a Stream reads (a
// segment.EventHook's RawTypes): snapshots, incremental, meta, custom and
// plugin events.
var RawTypes = []int64{2, 3, 4, 5, 6}

// Stream detects issues event by event, in the validator's own pass over
// a segment (segment.ValidateEvents), so that Pack decompresses and scans
// each segment once. It finds what Detect finds, with two differences:
// timestamps are the validator's (normalised to milliseconds), and the
// event type that picks the events it reads is the validator's too.
//
// Most events cost it next to nothing: an incremental event in rrweb's own
// layout that is neither a mutation nor a mouse interaction is told apart
// from its first bytes, without a parse. Nodes (a full snapshot, a
// mutation's adds) only name the target of a click, so the events holding
// them are kept aside, as bytes, and parsed only if the segment has a click.
type Stream struct {
	s    *scan
	lim  Limits
	n    int    // events seen
	held []byte // kept events with nodes, back to back
	ends []int  // end of each kept event in held
	// incomplete: an event was over the hook's MaxRaw, or the kept events
	// over MaxInput; fail: an event is past the parser (too deep).
	incomplete, fail bool
}

// NewStream returns a Stream with the given rules and limits.
func NewStream(rules Rules, lim Limits) *Stream {
	rules, lim = rules.withDefaults(), lim.withDefaults()
	return &Stream{s: newScan(rules, lim), lim: lim}
}

// Event takes one event, in order: typ and hasType are its rrweb type and
// ts its timestamp as the validator read them, raw its JSON (nil when the
// validator handed none over). raw is copied if kept.
func (st *Stream) Event(typ int64, hasType bool, ts int64, raw []byte) {
	if st.fail || st.incomplete {
		return
	}
	if st.n++; st.n > st.lim.MaxEvents {
		return
	}
	s := st.s
	s.lastTS = max(s.lastTS, ts)
	if !hasType || typ < 2 || typ > 6 {
		return
	}
	if raw == nil {
		st.incomplete = true
		return
	}
	if typ == 3 {
		switch src, ok := leadingSource(raw); {
		case !ok, src == 2:
		case src == 0:
			s.reactions = append(s.reactions, ts)
			if !addsNothing(raw) {
				st.keep(raw)
			}
			return
		default:
			return // scroll, input, mouse moves...: nothing to detect
		}
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(raw)
	if err != nil {
		st.fail = true
		return
	}
	if s.event(v, ts, true) {
		st.keep(raw)
	}
}

// keep holds a copy of raw for its nodes.
func (st *Stream) keep(raw []byte) {
	if len(st.held)+len(raw) > st.lim.MaxInput {
		st.incomplete = true
		return
	}
	st.held = append(st.held, raw...)
	st.ends = append(st.ends, len(st.held))
}

// Finish returns the occurrences found, in time order. A segment the
// stream could not see whole (an event over the hook's MaxRaw, nodes over
// MaxInput) has none; one the parser cannot read (nested deeper than it
// goes) fails as Detect does.
func (st *Stream) Finish() ([]Occurrence, error) {
	switch {
	case st.fail:
		return nil, errNotEvents
	case st.incomplete:
		return nil, nil
	}
	s := st.s
	if len(s.clicks) > 0 && len(st.ends) > 0 {
		p := parsers.Get()
		defer parsers.Put(p)
		start := 0
		for _, end := range st.ends {
			v, err := p.ParseBytes(st.held[start:end])
			if err != nil {
				return nil, errNotEvents
			}
			s.readNodes(v)
			start = end
		}
	}
	return s.finish(), nil
}

// addsNothing reports whether a mutation's only "adds" key is an empty
// array. ("adds" in quotes cannot occur inside a JSON string, whose quotes
// are escaped, so a count of one means one key.)
func addsNothing(raw []byte) bool {
	const key = `"adds"`
	i := bytes.Index(raw, []byte(key))
	if i < 0 || !bytes.HasPrefix(raw[i+len(key):], []byte(":[]")) {
		return false
	}
	return !bytes.Contains(raw[i+len(key):], []byte(key))
}

// leadingSource returns data.source of an incremental event written in
// rrweb's own layout, {"type":3,"data":{"source":N,...: what the parser
// would read, as it takes the first of duplicate keys. ok is false for any
// other layout, which is parsed.
func leadingSource(raw []byte) (source int, ok bool) {
	const prefix = `{"type":3,"data":{"source":`
	if len(raw) < len(prefix)+2 || string(raw[:len(prefix)]) != prefix {
		return 0, false
	}
	i := len(prefix)
	for ; i < len(raw) && i < len(prefix)+4 && raw[i] >= '0' && raw[i] <= '9'; i++ {
		source = source*10 + int(raw[i]-'0')
	}
	if i == len(prefix) || i == len(raw) || (raw[i] != ',' && raw[i] != '}') {
		return 0, false
	}
	return source, true
}

// timestamp reads an event's timestamp as Detect does (Stream takes the
// validator's instead).
func timestamp(e *fastjson.Value) int64 {
	ts := e.GetInt64("timestamp")
	if ts <= 0 {
		if f := e.GetFloat64("timestamp"); f > 0 {
			ts = int64(f)
		}
	}
	return ts
}

type click struct {
	ts   int64
	node int
	page string
}

type consoleErr struct {
	ts   int64
	msg  string
	page string
}

type node struct {
	parent int
	label  string // tag, #id or .class
	tag    string
}

type scan struct {
	rules Rules
	lim   Limits

	page      string // current page's path template
	nodes     map[int]node
	clicks    []click
	reactions []int64 // mutation and navigation times
	errors    []consoleErr
	lastTS    int64
	out       []Occurrence
}

func newScan(rules Rules, lim Limits) *scan {
	return &scan{rules: rules, lim: lim, nodes: map[int]node{}}
}

// event takes one event at time ts. With deferNodes it records no nodes
// (a full snapshot, a mutation's adds) and reports whether the event has
// some, for nodes to read later; otherwise it reads them at once.
func (s *scan) event(e *fastjson.Value, ts int64, deferNodes bool) (hasNodes bool) {
	s.lastTS = max(s.lastTS, ts)
	data := e.Get("data")
	switch e.GetInt("type") {
	case 2: // FullSnapshot
		if deferNodes {
			return true
		}
		s.snapshot(data.Get("node"), 0, 0)
	case 3: // IncrementalSnapshot
		switch data.GetInt("source") {
		case 0: // Mutation
			s.reactions = append(s.reactions, ts)
			if deferNodes {
				return len(data.GetArray("adds")) > 0
			}
			s.adds(data)
		case 2: // MouseInteraction
			if data.GetInt("type") == 2 { // Click
				s.clicks = append(s.clicks, click{ts: ts, node: data.GetInt("id"), page: s.page})
			}
		}
	case 4: // Meta: a (new) page
		s.reactions = append(s.reactions, ts)
		s.page = PathTemplate(string(data.GetStringBytes("href")))
	case 5: // Custom: Sentry's performance spans
		if string(data.GetStringBytes("tag")) == "performanceSpan" {
			s.sentrySpan(ts, data.Get("payload"))
		}
	case 6: // Plugin
		switch string(data.GetStringBytes("plugin")) {
		case "rrweb/console@1":
			pl := data.Get("payload")
			if string(pl.GetStringBytes("level")) == "error" {
				msg := ""
				if args := pl.GetArray("payload"); len(args) > 0 {
					if b := args[0].GetStringBytes(); b != nil {
						// rrweb's console plugin sends each argument
						// JSON-stringified: a string arrives quoted.
						msg = string(b)
						if unq, err := strconv.Unquote(msg); err == nil && strings.HasPrefix(msg, `"`) {
							msg = unq
						}
					} else {
						msg = string(args[0].MarshalTo(nil))
					}
				}
				s.errors = append(s.errors, consoleErr{ts: ts, msg: MessageTemplate(msg), page: s.page})
			}
		case "rrweb/network@1":
			for _, r := range data.Get("payload").GetArray("requests") {
				s.request(ts, string(r.GetStringBytes("method")), string(r.GetStringBytes("name")),
					r.GetInt("status"), r.Get("status") != nil,
					int64(r.GetFloat64("endTime")-r.GetFloat64("startTime")))
			}
		}
	}
	return false
}

// readNodes reads the nodes of an event that event, deferring, said has.
func (s *scan) readNodes(e *fastjson.Value) {
	data := e.Get("data")
	switch e.GetInt("type") {
	case 2:
		s.snapshot(data.Get("node"), 0, 0)
	case 3:
		s.adds(data)
	}
}

// adds remembers the nodes a mutation adds.
func (s *scan) adds(data *fastjson.Value) {
	for _, a := range data.GetArray("adds") {
		s.snapshot(a.Get("node"), a.GetInt("parentId"), 0)
	}
}

// snapshot remembers the element nodes under n (bounded by MaxNodes and
// depth) so clicks can name their target by selector path.
func (s *scan) snapshot(n *fastjson.Value, parent, depth int) {
	if n == nil || depth > 256 || len(s.nodes) >= s.lim.MaxNodes {
		return
	}
	id := n.GetInt("id")
	if n.GetInt("type") == 2 { // Element
		tag := strings.ToLower(string(n.GetStringBytes("tagName")))
		label := tag
		attrs := n.Get("attributes")
		if v := attrs.GetStringBytes("id"); len(v) > 0 && len(v) < 64 && !hasDigitRun(string(v)) {
			label += "#" + string(v)
		} else if cls := attrs.GetStringBytes("class"); len(cls) > 0 {
			for _, c := range strings.Fields(string(cls)) {
				if len(c) < 64 && !hasDigitRun(c) {
					label += "." + c
					break
				}
			}
		}
		s.nodes[id] = node{parent: parent, label: label, tag: tag}
	}
	for _, c := range n.GetArray("childNodes") {
		s.snapshot(c, id, depth+1)
	}
}

// hasDigitRun reports whether s looks generated, as css-in-js class names
// and generated ids do: two digits in a row, or a part (between - and _)
// that mixes letters and digits (css-1a2b).
func hasDigitRun(s string) bool {
	for i := 1; i < len(s); i++ {
		if isDigit(s[i]) && isDigit(s[i-1]) {
			return true
		}
	}
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' }) {
		digits := strings.IndexFunc(part, func(r rune) bool { return r >= '0' && r <= '9' }) >= 0
		letters := strings.IndexFunc(part, func(r rune) bool { return r < '0' || r > '9' }) >= 0
		if digits && letters {
			return true
		}
	}
	return false
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// selector is the target of a click: a selector path up to an element
// with an id (at most 5 levels), or node:ID if the segment has no snapshot
// of it.
func (s *scan) selector(id int) (sel, tag string) {
	n, ok := s.nodes[id]
	if !ok {
		return "node:" + strconv.Itoa(id), ""
	}
	parts := []string{n.label}
	cur := n
	for range 4 {
		if strings.Contains(cur.label, "#") {
			break
		}
		p, ok := s.nodes[cur.parent]
		if !ok || p.tag == "html" || p.tag == "body" {
			break
		}
		parts = append(parts, p.label)
		cur = p
	}
	slices.Reverse(parts)
	return strings.Join(parts, " > "), n.tag
}

func (s *scan) sentrySpan(ts int64, p *fastjson.Value) {
	op := string(p.GetStringBytes("op"))
	if op != "resource.fetch" && op != "resource.xhr" {
		return
	}
	d := p.Get("data")
	dur := int64((p.GetFloat64("endTimestamp") - p.GetFloat64("startTimestamp")) * 1000)
	s.request(ts, string(d.GetStringBytes("method")), string(p.GetStringBytes("description")),
		d.GetInt("statusCode"), d.Get("statusCode") != nil, dur)
}

func (s *scan) request(ts int64, method, rawURL string, status int, hasStatus bool, durMS int64) {
	if method == "" {
		method = "GET"
	}
	req := strings.ToUpper(method) + " " + RequestTemplate(rawURL)
	d := Details{Page: s.page, Request: req, Status: status, DurationMS: max(durMS, 0)}
	switch {
	case hasStatus && (status == 0 || status >= 500):
		s.add(FailedRequest, ts, d, fmt.Sprintf("Failed request %s (%d)", req, status))
	case durMS >= s.rules.SlowRequestMS:
		d.Status = 0
		s.add(SlowRequest, ts, d, "Slow request "+req)
	}
}

func (s *scan) add(kind string, ts int64, d Details, title string) {
	if len(s.out) >= s.lim.MaxOccurrences {
		return
	}
	d.Page, d.Target, d.Request, d.Message = clip(d.Page), clip(d.Target), clip(d.Request), clip(d.Message)
	s.out = append(s.out, Occurrence{Kind: kind, TS: ts, Title: clip(title), Details: d,
		EdgeFP: EdgeFingerprint(kind, d), FinalFP: FinalFingerprint(kind, d)})
}

// clip keeps details and titles small (the occurrence row caps details).
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if (s[i] & 0xC0) != 0x80 { // a rune boundary
			return s[:i]
		}
	}
	return ""
}

func (s *scan) finish() []Occurrence {
	slices.SortStableFunc(s.clicks, func(a, b click) int { return cmp64(a.ts, b.ts) })
	slices.Sort(s.reactions)

	// Rage clicks: RageClicks on one node within the window; one
	// occurrence per burst, at the click that completes it.
	byNode := map[int][]click{}
	for _, c := range s.clicks {
		byNode[c.node] = append(byNode[c.node], c)
	}
	nodes := make([]int, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		cs := byNode[n]
		start, fired := 0, false
		for i := range cs {
			if i > 0 && cs[i].ts-cs[i-1].ts > s.rules.RageWindowMS {
				fired = false
			}
			for cs[i].ts-cs[start].ts > s.rules.RageWindowMS {
				start++
			}
			if !fired && i-start+1 >= s.rules.RageClicks {
				sel, _ := s.selector(n)
				count := i - start + 1
				for j := i + 1; j < len(cs) && cs[j].ts-cs[j-1].ts <= s.rules.RageWindowMS; j++ {
					count++
				}
				s.add(RageClick, cs[i].ts, Details{Page: cs[i].page, Target: sel, Count: count},
					fmt.Sprintf("Rage click on %s", sel))
				fired = true
			}
		}
	}

	// Dead clicks: nothing changed within the window. A click too close to
	// the segment's end to tell is left alone.
	for _, c := range s.clicks {
		if c.ts+s.rules.DeadWindowMS > s.lastTS {
			continue
		}
		i, _ := slices.BinarySearch(s.reactions, c.ts+1)
		if i < len(s.reactions) && s.reactions[i] <= c.ts+s.rules.DeadWindowMS {
			continue
		}
		sel, tag := s.selector(c.node)
		switch tag {
		case "input", "textarea", "select", "option", "label", "html", "body":
			continue // focusing a field, or a click on nothing in particular
		}
		s.add(DeadClick, c.ts, Details{Page: c.page, Target: sel}, "Dead click on "+sel)
	}

	// Console error bursts: ConsoleBurst errors within the window, one
	// occurrence per burst.
	slices.SortStableFunc(s.errors, func(a, b consoleErr) int { return cmp64(a.ts, b.ts) })
	start, fired := 0, false
	for i := range s.errors {
		if i > 0 && s.errors[i].ts-s.errors[i-1].ts > s.rules.ConsoleWindowMS {
			fired = false
		}
		for s.errors[i].ts-s.errors[start].ts > s.rules.ConsoleWindowMS {
			start++
		}
		if !fired && i-start+1 >= s.rules.ConsoleBurst {
			first := s.errors[start]
			count := i - start + 1
			for j := i + 1; j < len(s.errors) && s.errors[j].ts-s.errors[j-1].ts <= s.rules.ConsoleWindowMS; j++ {
				count++
			}
			s.add(ConsoleErrors, s.errors[i].ts, Details{Page: first.page, Message: first.msg, Count: count},
				"Console errors: "+first.msg)
			fired = true
		}
	}
	slices.SortStableFunc(s.out, func(a, b Occurrence) int {
		if c := cmp64(a.TS, b.TS); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return s.out
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// EdgeFingerprint is the throttle key Pack computes: kind, page template
// and target (a node's selector path, or a request's template).
func EdgeFingerprint(kind string, d Details) string {
	return hash("edge", kind, d.Page, d.Target, d.Request)
}

// FinalFingerprint is the grouping key under rule version RuleVersion,
// computed from an occurrence's kind and details alone, so a new rule can
// be run over stored details later. v1 adds the console message template
// to the edge fingerprint's inputs and leaves the page out of request
// issues (one failing endpoint is one issue whichever page calls it).
func FinalFingerprint(kind string, d Details) string {
	page := d.Page
	if kind == FailedRequest || kind == SlowRequest {
		page = ""
	}
	return "v" + strconv.Itoa(RuleVersion) + ":" + hash("final", kind, page, d.Target, d.Request, d.Message)
}

func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

var (
	uuidRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)
	hexRE   = regexp.MustCompile(`^[0-9a-fA-F]{16,}$`)
	digitRE = regexp.MustCompile(`[0-9]`)
	numRE   = regexp.MustCompile(`\d+`)
	quoteRE = regexp.MustCompile(`"[^"]*"|'[^']*'`)
)

// PathTemplate is the path of rawURL with ids replaced by placeholders:
// numbers by {n}, UUIDs by {uuid}, long hex and other digit-bearing tokens
// longer than 24 bytes by {id}. Query and fragment are dropped.
func PathTemplate(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return templatePath(u.Path)
}

// RequestTemplate is host and path template of a request URL.
func RequestTemplate(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host + templatePath(u.Path)
}

func templatePath(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	if len(segs) > 32 {
		segs = segs[:32]
	}
	for i, seg := range segs {
		switch {
		case seg == "":
		case isDigits(seg):
			segs[i] = "{n}"
		case uuidRE.MatchString(seg):
			segs[i] = "{uuid}"
		case hexRE.MatchString(seg), len(seg) > 24 && digitRE.MatchString(seg):
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// MessageTemplate is a console message with quoted strings and numbers
// replaced, cut to its first line, so one error with different values
// groups as one.
func MessageTemplate(msg string) string {
	msg, _, _ = strings.Cut(msg, "\n")
	msg = clip(msg)
	msg = quoteRE.ReplaceAllString(msg, `"…"`)
	return numRE.ReplaceAllString(msg, "{n}")
}
