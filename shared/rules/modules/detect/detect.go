// Package detect is the detection rule: it finds rage clicks, dead clicks
// and bursts of console errors in a segment and reports each as a tag with a
// multi-level fingerprint (kind; kind and page; kind, page and element or
// message), so that a later grouping step can merge or split issues without
// touching the data. It never changes or drops a segment.
//
// Config (all optional, shown with defaults):
//
//	{"rage_clicks": 3, "rage_window_ms": 1000,
//	 "dead_click_ms": 1000,
//	 "console_errors": 5, "console_window_ms": 5000}
package detect

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/replayvault/replayvault/shared/rules/sdk"
)

// Config is the assignment's configuration.
type Config struct {
	RageClicks      int   `json:"rage_clicks"`
	RageWindowMS    int64 `json:"rage_window_ms"`
	DeadClickMS     int64 `json:"dead_click_ms"`
	ConsoleErrors   int   `json:"console_errors"`
	ConsoleWindowMS int64 `json:"console_window_ms"`
}

// rrweb constants.
const (
	eventFullSnapshot = 2
	eventIncremental  = 3
	eventMeta         = 4
	eventCustom       = 5
	eventPlugin       = 6

	sourceMutation         = 0
	sourceMouseInteraction = 2
	sourceScroll           = 3
	sourceInput            = 5
	clickType              = 2
)

// Func is the rule function registered by the module.
func Func(in *sdk.Input) (*sdk.Output, error) {
	c := Config{RageClicks: 3, RageWindowMS: 1000, DeadClickMS: 1000, ConsoleErrors: 5, ConsoleWindowMS: 5000}
	if len(in.Config) > 0 && string(in.Config) != "null" {
		if err := json.Unmarshal(in.Config, &c); err != nil {
			return sdk.Reject("detect_bad_config"), nil
		}
	}
	found, err := Scan(in.Events, in.Attributes["url"], c)
	if err != nil {
		return nil, err
	}
	out := sdk.Keep()
	for _, f := range found {
		out.Tags = append(out.Tags, sdk.Tag{Key: "issue", Value: f.Kind})
		out.Fingerprints = append(out.Fingerprints, f)
	}
	return out, nil
}

// parsers are reused across calls (see piiscrub).
var parsers fastjson.ParserPool

type click struct {
	ts int64
	id int
}

// Scan returns the detections in events, in the order found.
func Scan(events []byte, pageURL string, c Config) ([]sdk.Fingerprint, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(events)
	if err != nil {
		return nil, fmt.Errorf("parse events: %w", err)
	}
	arr, err := v.Array()
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	var (
		found    []sdk.Fingerprint
		nodes    = map[int]string{} // id → element description
		clicks   []click
		pending  []click // clicks waiting for a reaction
		errTimes []int64
		errMsg   string
		lastTS   int64
		raged    = map[int]bool{}
		burst    bool
	)
	page := pagePath(pageURL)
	dead := func(cl click) {
		found = append(found, fingerprint("dead_click", page, element(nodes, cl.id)))
	}
	for _, ev := range arr {
		ts := ev.GetInt64("timestamp")
		lastTS = max(lastTS, ts)
		data := ev.Get("data")
		// A click with no reaction within DeadClickMS is dead.
		for len(pending) > 0 && ts-pending[0].ts > c.DeadClickMS {
			dead(pending[0])
			pending = pending[1:]
		}
		switch ev.GetInt("type") {
		case eventMeta:
			if href := string(data.GetStringBytes("href")); href != "" {
				page = pagePath(href)
			}
			pending = nil
		case eventFullSnapshot:
			describe(data.Get("node"), nodes)
			pending = nil
		case eventIncremental:
			switch data.GetInt("source") {
			case sourceMutation:
				for _, add := range data.GetArray("adds") {
					describe(add.Get("node"), nodes)
				}
				pending = nil
			case sourceScroll, sourceInput:
				pending = nil
			case sourceMouseInteraction:
				if data.GetInt("type") != clickType {
					continue
				}
				cl := click{ts: ts, id: data.GetInt("id")}
				pending = append(pending, cl)
				clicks = append(clicks, cl)
				n := 0
				for i := len(clicks) - 1; i >= 0 && ts-clicks[i].ts <= c.RageWindowMS; i-- {
					if clicks[i].id == cl.id {
						n++
					}
				}
				if n >= c.RageClicks && !raged[cl.id] {
					raged[cl.id] = true
					found = append(found, fingerprint("rage_click", page, element(nodes, cl.id)))
				}
			}
		case eventPlugin, eventCustom:
			if msg, ok := consoleError(ev); ok {
				errTimes = append(errTimes, ts)
				if errMsg == "" {
					errMsg = msg
				}
				for len(errTimes) > 0 && ts-errTimes[0] > c.ConsoleWindowMS {
					errTimes = errTimes[1:]
				}
				if len(errTimes) >= c.ConsoleErrors && !burst {
					burst = true
					found = append(found, fingerprint("console_error_burst", page, normalize(errMsg)))
				}
			}
		}
	}
	// Clicks whose window the segment covers entirely and that saw nothing.
	for _, cl := range pending {
		if lastTS-cl.ts > c.DeadClickMS {
			dead(cl)
		}
	}
	return found, nil
}

func fingerprint(kind, page, detail string) sdk.Fingerprint {
	return sdk.Fingerprint{Kind: kind, Levels: []string{kind, kind + ":" + page, kind + ":" + page + ":" + detail}}
}

// consoleError recognises a console error from rrweb's console plugin or a
// Sentry console breadcrumb, and returns its message.
func consoleError(ev *fastjson.Value) (string, bool) {
	data := ev.Get("data")
	if ev.GetInt("type") == eventPlugin {
		if !strings.HasPrefix(string(data.GetStringBytes("plugin")), "rrweb/console") {
			return "", false
		}
		pl := data.Get("payload")
		if string(pl.GetStringBytes("level")) != "error" {
			return "", false
		}
		var parts []string
		// The plugin records each argument JSON-stringified.
		for _, a := range pl.GetArray("payload") {
			arg := string(a.MarshalTo(nil))
			if a.Type() == fastjson.TypeString {
				arg = string(a.GetStringBytes())
				if unq, err := strconv.Unquote(arg); err == nil {
					arg = unq
				}
			}
			parts = append(parts, arg)
		}
		return strings.Join(parts, " "), true
	}
	pl := data.Get("payload")
	if string(data.GetStringBytes("tag")) == "breadcrumb" && string(pl.GetStringBytes("category")) == "console" && string(pl.GetStringBytes("level")) == "error" {
		return string(pl.GetStringBytes("message")), true
	}
	return "", false
}

// describe records an element description (tag#id.class) for each node.
func describe(n *fastjson.Value, nodes map[int]string) {
	if n == nil || len(nodes) > 100_000 {
		return
	}
	if n.GetInt("type") == 2 {
		d := strings.ToLower(string(n.GetStringBytes("tagName")))
		if id := n.GetStringBytes("attributes", "id"); len(id) > 0 {
			d += "#" + string(id)
		} else if cls := strings.Fields(string(n.GetStringBytes("attributes", "class"))); len(cls) > 0 {
			d += "." + cls[0]
		}
		nodes[n.GetInt("id")] = d
	}
	for _, c := range n.GetArray("childNodes") {
		describe(c, nodes)
	}
}

func element(nodes map[int]string, id int) string {
	if d, ok := nodes[id]; ok {
		return d
	}
	return "node" + strconv.Itoa(id)
}

// pagePath keeps a URL's path: query strings and fragments often carry
// personal data and make fingerprints too fine.
func pagePath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return "/"
	}
	if u.Path == "" {
		return "/"
	}
	return u.Path
}

// normalize makes a console message stable across occurrences: digits
// become 0, and it is cut at 80 bytes.
func normalize(msg string) string {
	b := []byte(msg)
	for i, c := range b {
		if c >= '0' && c <= '9' {
			b[i] = '0'
		}
	}
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}
