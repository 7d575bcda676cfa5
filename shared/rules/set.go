package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// Limits on what a rule may attach to a segment.
const (
	maxTags       = 64
	maxTagBytes   = 256
	maxReasonLen  = 120
	maxFPLevels   = 8
	maxModuleSize = 64 << 20
)

// Verdict is what a project's rules decided about one segment.
type Verdict struct {
	// Decision is sdk.DecisionKeep, DecisionDrop or DecisionReject.
	Decision string
	// Reason names the rule and its reason (for the reject topic's
	// reject_reason attribute), for drop and reject.
	Reason string
	// Events, when not nil, replaces the segment's events.
	Events       []byte
	Tags         []sdk.Tag
	Fingerprints []sdk.Fingerprint
	// FailedOpen names the rules that failed and were skipped.
	FailedOpen []string
	// OnlyStrings is set when Events were rewritten only by ModeStrings
	// rules: they are valid JSON and differ from the segment's events only
	// inside strings other than the events' types and timestamps, so what
	// validation learned of the events, but their size, still holds.
	OnlyStrings bool
	// SameOffsets is set with OnlyStrings when no edit changed a string's
	// length (masks never do): every event, and every byte outside the
	// edited strings, is where it was in the segment's events.
	SameOffsets bool
}

// Set is the rules of every project as last loaded from the database, with
// their modules compiled. Pack calls Apply on its hot path; Refresh (in the
// background, never in Pack's CPU slot) reloads assignments and fetches and
// compiles new modules.
type Set struct {
	engine   *Engine
	db       *store.DB
	blobs    blob.Store
	maxInput int64

	refreshMu sync.Mutex
	snap      atomic.Pointer[snapshot]
}

type snapshot struct {
	projects map[int64][]*bound
	// checks[p] is the Scrub check of project p's strings-mode rules
	// (see ScrubCheck).
	checks   map[int64]*segment.ScrubCheck
	loadedAt time.Time
}

// bound is one assignment with its module, or the permanent reason its
// module cannot be loaded.
type bound struct {
	a       store.RuleAssignment
	mod     *Module
	loadErr error
	tenant  string
	// wants is what the module asked to see (nil: the events).
	wants *compiledWants
}

// NewSet returns an empty Set; call Refresh before the first Apply.
// Segments whose events exceed maxInput bytes are not given to rules: that
// counts as a failure of each rule (the fail mode decides).
func NewSet(engine *Engine, db *store.DB, blobs blob.Store, maxInput int64) *Set {
	return &Set{engine: engine, db: db, blobs: blobs, maxInput: maxInput}
}

// ErrNotLoaded means Apply ran before the first successful Refresh.
var ErrNotLoaded = errors.New("rules not loaded")

// Has reports whether project has any rule. It is cheap: Pack calls it for
// every segment to skip decompression for projects without rules.
func (s *Set) Has(project int64) (bool, error) {
	snap := s.snap.Load()
	if snap == nil {
		return false, ErrNotLoaded
	}
	return len(snap.projects[project]) > 0, nil
}

// Refresh reloads every assignment and makes sure its module is compiled.
// A module missing from the bucket, corrupt or not compiling is a permanent
// failure of its assignments (they apply their fail mode); a database or
// bucket outage keeps the previous rules and returns the error.
func (s *Set) Refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	as, err := s.db.RuleAssignments(ctx, 0)
	if err != nil {
		return fmt.Errorf("refresh rules: %w", err)
	}
	old := s.snap.Load()
	next := &snapshot{projects: map[int64][]*bound{}, checks: map[int64]*segment.ScrubCheck{}, loadedAt: time.Now()}
	keep := map[string]bool{}
	loaded := map[string]*bound{} // by hash: one fetch per module
	for _, a := range as {
		b := &bound{a: a, tenant: tenant(a)}
		if prev, ok := loaded[a.ModuleHash]; ok {
			b.mod, b.loadErr = prev.mod, prev.loadErr
		} else {
			b.mod, b.loadErr = s.load(ctx, a.ModuleHash, a.ModuleSize)
			if b.loadErr != nil && !errors.Is(b.loadErr, errPermanent) {
				return fmt.Errorf("refresh rules: %w", b.loadErr)
			}
			loaded[a.ModuleHash] = b
		}
		if b.mod != nil {
			keep[a.ModuleHash] = true
			b.wants = s.describe(ctx, old, b)
		}
		next.projects[a.ProjectID] = append(next.projects[a.ProjectID], b)
	}
	for p, bs := range next.projects {
		if c := scrubCheck(bs); c != nil {
			next.checks[p] = c
		}
	}
	s.snap.Store(next)
	// Instances of changed or removed assignments, and modules no longer
	// assigned, go away; a call still running on them fails and is retried
	// by Pub/Sub.
	if old != nil {
		live := map[string]bool{}
		for _, bs := range next.projects {
			for _, b := range bs {
				live[b.a.ModuleHash+"/"+b.tenant] = true
			}
		}
		for _, bs := range old.projects {
			for _, b := range bs {
				if b.mod != nil && !live[b.a.ModuleHash+"/"+b.tenant] {
					b.mod.DropTenant(b.tenant)
				}
			}
		}
	}
	s.engine.Retain(keep)
	return nil
}

var errPermanent = errors.New("rule module unusable")

// describe asks b's module what it wants to see of each segment under b's
// config (see sdk.CallDescribe), or takes the answer from the previous
// snapshot. A module that fails the call, or does not answer, gets the
// events.
func (s *Set) describe(ctx context.Context, old *snapshot, b *bound) *compiledWants {
	if old != nil {
		for _, p := range old.projects[b.a.ProjectID] {
			if p.mod == b.mod && p.tenant == b.tenant {
				return p.wants
			}
		}
	}
	in, err := sdk.EncodeInput(nil, &sdk.Header{ABI: sdk.ABIVersion, ProjectID: b.a.ProjectID, Config: b.a.Config, Call: sdk.CallDescribe}, nil)
	if err != nil {
		return nil
	}
	raw, err := b.mod.Call(ctx, b.tenant, in)
	if err != nil {
		slog.DebugContext(ctx, "rule module failed the describe call; it gets the events", "rule", b.a.Name, "error", err)
		return nil
	}
	out, err := sdk.DecodeOutput(raw)
	if err != nil || out.Wants == nil {
		return nil
	}
	switch out.Wants.Mode {
	case sdk.ModeHeader, sdk.ModeStrings:
		return compileWants(*out.Wants)
	}
	return nil
}

// load returns the compiled module with hash, fetching its size bytes from
// the bucket if it is not compiled yet.
func (s *Set) load(ctx context.Context, hash string, size int64) (*Module, error) {
	if m := s.engine.Cached(hash); m != nil {
		return m, nil
	}
	if size <= 0 || size > maxModuleSize {
		return nil, fmt.Errorf("%w: recorded size %d of %s out of range", errPermanent, size, hash)
	}
	wasm, err := s.blobs.ReadRange(ctx, store.RuleModulePath(hash), 0, size)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s not in the bucket", errPermanent, store.RuleModulePath(hash))
	}
	if err != nil {
		return nil, fmt.Errorf("fetch rule module %s: %w", hash, err)
	}
	if len(wasm) > maxModuleSize || Hash(wasm) != hash {
		return nil, fmt.Errorf("%w: %s does not match its hash", errPermanent, store.RuleModulePath(hash))
	}
	m, err := s.engine.Module(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPermanent, err)
	}
	return m, nil
}

// tenant names an assignment's instance pool: its project, name and config,
// so a config change starts fresh instances and projects never share one.
func tenant(a store.RuleAssignment) string {
	h := sha256.Sum256(a.Config)
	return fmt.Sprintf("%d/%s/%s", a.ProjectID, a.Name, hex.EncodeToString(h[:8]))
}

// Run refreshes every interval until ctx ends. Failures are logged and the
// previous rules stay in force.
func (s *Set) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 2*interval+time.Minute)
		err := s.Refresh(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			slog.ErrorContext(ctx, "rules refresh failed; previous rules stay in force", "error", err)
		}
	}
}

// Apply runs the project's rules in order on a segment's decompressed
// events, which must have passed segment.Validate (a strings-mode rule's
// pre-filter reads valid JSON only; Pack validates every segment before
// its rules). A rule's rewritten events are what the next rule sees. The first
// drop or reject ends the run. A failing rule rejects the segment (fail
// closed) or is skipped (fail open). An error means Apply could not run
// (not loaded, ctx ended): the segment should be redelivered.
func (s *Set) Apply(ctx context.Context, id segment.ID, retention int, attrs map[string]string, events []byte) (*Verdict, error) {
	return s.apply(ctx, id, retention, attrs, events, nil, nil, false)
}

// Span is where one top-level event is in a segment's events: [Start, End)
// from its opening to past its closing brace, as segment.EventMeta gives.
// Clear reports that the validating pass, under the project's ScrubCheck,
// cleared the event (!segment.EventMeta.MayScrub): nothing in it could
// concern a strings-mode rule's pre-filter. NoTags reports that the pass
// also saw no "tagName" key in it (!segment.EventMeta.TagName), so the
// walk need not keep it for the tags of its nodes; it is read only with
// Clear.
type Span struct {
	Start, End int64
	Clear      bool
	NoTags     bool
}

// ScrubCheck returns the check for the validating pass (segment.EventHook's
// Scrub) that lets ApplySpans pass over the events it clears without
// reading them again, or nil when project has no strings-mode rule. It is
// the union of the pre-filters of the project's strings-mode rules (see
// mayEdit), so an event it clears is one each of them would pass over;
// those that select nodes read every event whatever it says.
func (s *Set) ScrubCheck(project int64) *segment.ScrubCheck {
	if snap := s.snap.Load(); snap != nil {
		return snap.checks[project]
	}
	return nil
}

// ApplySpans is Apply for a caller that knows where each event is (Pack,
// from its validating pass): spans, in order, lets the walk of a
// ModeStrings rule pass over the events nothing in which could concern the
// rule (see eventMayEdit). spans may be nil, or cover only the first
// events; one that does not match the events is not used.
//
// check is the ScrubCheck under which the pass set the spans' Clear (nil:
// none). Clear is used only if check is the project's current one (the
// rules did not change since) and the spans cover every byte of the
// events but their separators, and only for the events as they came:
// once a rule rewrote them every rule reads them itself.
//
// With inPlace, ApplySpans takes events as its own: a strings-mode rule
// whose edits keep every length (masks do) writes them into events,
// sparing a copy, so the verdict's Events may share events' storage, and
// events must not be used afterwards but through the verdict. They are
// written only once every edit has been checked: a rule that fails leaves
// them as they were.
func (s *Set) ApplySpans(ctx context.Context, id segment.ID, retention int, attrs map[string]string, events []byte, spans []Span, check *segment.ScrubCheck, inPlace bool) (*Verdict, error) {
	return s.apply(ctx, id, retention, attrs, events, spans, check, inPlace)
}

// apply is Apply and ApplySpans; own allows edits in place.
func (s *Set) apply(ctx context.Context, id segment.ID, retention int, attrs map[string]string, events []byte, spans []Span, check *segment.ScrubCheck, own bool) (*Verdict, error) {
	snap := s.snap.Load()
	if snap == nil {
		return nil, ErrNotLoaded
	}
	v := &Verdict{Decision: sdk.DecisionKeep}
	bs := snap.projects[id.ProjectID]
	if len(bs) == 0 {
		return v, nil
	}
	h := sdk.Header{
		ABI: sdk.ABIVersion, ProjectID: id.ProjectID, ReplayID: id.ReplayID.String(),
		SegmentID: id.SegmentID, Type: id.Type, RetentionDays: retention, Attributes: attrs,
	}
	cur := events
	cleared := check != nil && check == snap.checks[id.ProjectID] && spansCover(events, spans)
	var frame []byte
	onlyStrings, sameOffsets := true, true
	for _, b := range bs {
		if b.a.ProjectID != id.ProjectID {
			return nil, fmt.Errorf("rules of project %d filed under %d", b.a.ProjectID, id.ProjectID) // never
		}
		out, same, err := s.call(ctx, b, &h, cur, spans, cleared, own, &frame)
		var f *Failure
		if errors.As(err, &f) {
			if b.a.FailOpen {
				v.FailedOpen = append(v.FailedOpen, b.a.Name)
				slog.WarnContext(ctx, "rule failed open", "project_id", id.ProjectID, "rule", b.a.Name, "module", b.a.ModuleHash[:12], "failure", f.Kind)
				continue
			}
			v.Decision, v.Reason, v.Events = sdk.DecisionReject, "rule_failed:"+b.a.Name+":"+f.Kind, nil
			return v, nil
		}
		if err != nil {
			return nil, err
		}
		addTags(v, out)
		switch out.Decision {
		case sdk.DecisionDrop, sdk.DecisionReject:
			v.Decision, v.Reason, v.Events = out.Decision, "rule:"+b.a.Name+":"+sanitize(out.Reason), nil
			return v, nil
		}
		if out.Rewritten {
			cur, own, cleared = out.Events, true, false // a rewrite is ours
			if !same {
				spans = nil // the events moved
			}
			v.Events = cur
			onlyStrings = onlyStrings && b.wants != nil && b.wants.Mode == sdk.ModeStrings
			sameOffsets = sameOffsets && onlyStrings && same
			v.OnlyStrings, v.SameOffsets = onlyStrings, sameOffsets
		}
	}
	return v, nil
}

// call runs one rule; failures of the module (including a bad output or an
// input it may not see) come back as *Failure. same reports, for a
// ModeStrings rule's rewrite, that no string changed length.
func (s *Set) call(ctx context.Context, b *bound, h *sdk.Header, events []byte, spans []Span, cleared, own bool, frame *[]byte) (out *sdk.Output, same bool, err error) {
	if b.loadErr != nil {
		return nil, false, &Failure{Kind: "load", Err: b.loadErr}
	}
	if int64(len(events)) > s.maxInput {
		return nil, false, &Failure{Kind: "input_too_large", Err: fmt.Errorf("%d bytes of events exceed %d", len(events), s.maxInput)}
	}
	if b.wants != nil && b.wants.Mode == sdk.ModeStrings {
		return s.callStrings(ctx, b, events, spans, cleared, own, frame)
	}
	out, err = s.callEvents(ctx, b, h, events, frame)
	return out, false, err
}

// callEvents runs a ModeEvents or ModeHeader rule.
func (s *Set) callEvents(ctx context.Context, b *bound, h *sdk.Header, events []byte, frame *[]byte) (*sdk.Output, error) {
	h.Config = b.a.Config
	body := events
	if b.wants != nil && b.wants.Mode == sdk.ModeHeader {
		body = nil
	}
	in, err := sdk.EncodeInput((*frame)[:0], h, body)
	if err != nil {
		return nil, fmt.Errorf("encode rule input: %w", err)
	}
	*frame = in
	raw, err := b.mod.Call(ctx, b.tenant, in)
	if err != nil {
		return nil, err
	}
	out, err := sdk.DecodeOutput(raw)
	if err != nil {
		return nil, &Failure{Kind: "output", Err: err}
	}
	switch out.Decision {
	case sdk.DecisionKeep, sdk.DecisionDrop, sdk.DecisionReject:
	default:
		return nil, &Failure{Kind: "output", Err: fmt.Errorf("unknown decision %q", out.Decision)}
	}
	return out, nil
}

func addTags(v *Verdict, out *sdk.Output) {
	for _, t := range out.Tags {
		if len(v.Tags) >= maxTags {
			break
		}
		v.Tags = append(v.Tags, sdk.Tag{Key: truncate(t.Key), Value: truncate(t.Value)})
	}
	for _, f := range out.Fingerprints {
		if len(v.Fingerprints) >= maxTags {
			break
		}
		levels := f.Levels[:min(len(f.Levels), maxFPLevels)]
		for i := range levels {
			levels[i] = truncate(levels[i])
		}
		v.Fingerprints = append(v.Fingerprints, sdk.Fingerprint{Kind: truncate(f.Kind), Levels: levels})
	}
}

func truncate(s string) string {
	if len(s) > maxTagBytes {
		return strings.ToValidUTF8(s[:maxTagBytes], "")
	}
	return s
}

// sanitize keeps a module's reason printable and short: it becomes a
// Pub/Sub attribute and a log field.
func sanitize(reason string) string {
	b := make([]byte, 0, min(len(reason), maxReasonLen))
	for i := 0; i < len(reason) && len(b) < maxReasonLen; i++ {
		c := reason[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.', c == ':':
			b = append(b, c)
		case c == ' ':
			b = append(b, '_')
		}
	}
	if len(b) == 0 {
		return "unspecified"
	}
	return string(b)
}

// callStrings runs a ModeStrings rule: the table of the strings it wants
// goes in, its edits are spliced into the events (in place when own and
// no length changes); same reports that no edit changed a string's
// length. With cleared, the spans cover the events and their Clear holds
// (see ApplySpans).
func (s *Set) callStrings(ctx context.Context, b *bound, events []byte, spans []Span, cleared, own bool, frame *[]byte) (*sdk.Output, bool, error) {
	if cleared && !b.wants.Nodes && allClear(spans) || !cleared && !mayEdit(events, b.wants) {
		// Nothing the rule could concern (and the events are valid JSON:
		// Pack validated them): the walk would build an empty table.
		return sdk.Keep(), true, nil
	}
	wk, err := buildTableSpans(events, b.wants, b.a.Config, spans, cleared)
	if err != nil {
		return nil, false, &Failure{Kind: "input", Err: err}
	}
	defer putWalker(wk)
	var edits []sdk.Edit
	if len(wk.t.Strings) > 0 {
		*frame = sdk.AppendTable((*frame)[:0], &wk.t.Table)
		raw, err := b.mod.Call(ctx, b.tenant, *frame)
		if err != nil {
			return nil, false, err
		}
		if edits, err = sdk.DecodeEdits(raw, len(wk.t.Strings)); err != nil {
			return nil, false, &Failure{Kind: "output", Err: err}
		}
	}
	if len(edits) == 0 && len(wk.masks) == 0 {
		return sdk.Keep(), true, nil
	}
	rewritten, same, err := wk.splice(events, edits, own)
	if err != nil {
		return nil, false, &Failure{Kind: "output", Err: err}
	}
	return sdk.Keep().Rewrite(rewritten), same, nil
}
