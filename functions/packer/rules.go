package packer

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// UseRules makes p run the projects' edge rules on every segment between
// validation and sealing. Call it before the first Ingest.
func (p *Packer) UseRules(rs *rules.Set) { p.rules = rs }

// applyRules runs the project's rules on a validated segment. It returns
// the message to seal (with rewritten events, validated again, in place of
// the payload) and Stored, or the segment's final result: Filtered (dropped
// by a rule), Rejected (sent to the reject topic with the rule's reason).
// It runs inside the CPU slot: rules are CPU work, and modules are fetched
// and compiled by the background refresh, never here.
func (p *Packer) applyRules(ctx context.Context, attrs segment.Attributes, m Message, info segment.Info) (Message, segment.Info, Result, error) {
	has, err := p.rules.Has(attrs.ID.ProjectID)
	if err != nil || !has {
		return m, info, Stored, err
	}
	events := m.Data
	if info.Encoding != segment.Plain {
		if events, err = segment.Decode(info.Encoding, m.Data, p.cfg.Limits.MaxDecompressed); err != nil {
			return m, info, 0, fmt.Errorf("decode %s for rules: %w", attrs.ID, err)
		}
	}
	v, err := p.rules.Apply(ctx, attrs.ID, attrs.RetentionDays, m.Attributes, events)
	if err != nil {
		return m, info, 0, fmt.Errorf("rules for %s: %w", attrs.ID, err)
	}
	if len(v.Tags) > 0 || len(v.Fingerprints) > 0 {
		// Kept for the replay-issues work; the values are the rule's
		// output (element descriptions, normalized messages), never
		// payload text, but only their count is logged.
		slog.DebugContext(ctx, "rules tagged segment", "segment", attrs.ID.String(), "tags", len(v.Tags), "fingerprints", len(v.Fingerprints))
	}
	switch v.Decision {
	case sdk.DecisionDrop:
		p.stats.Filtered.Add(1)
		return m, info, Filtered, nil
	case sdk.DecisionReject:
		// The original payload goes to the reject topic: it may be
		// replayed after the rule is fixed. The topic is as private as
		// the bucket.
		if err := p.reject.Reject(ctx, m.Attributes, m.Data, v.Reason); err != nil {
			return m, info, 0, fmt.Errorf("reject message %s (%s): %w", m.ID, v.Reason, err)
		}
		p.stats.Rejected.Add(1)
		slog.WarnContext(ctx, "segment rejected by rule", "message_id", m.ID, "reject_reason", v.Reason)
		return m, info, Rejected, nil
	}
	if v.Events == nil {
		return m, info, Stored, nil
	}
	// The rewritten events replace the payload, so the original is never
	// sealed; they must pass the same validation as a received payload.
	rinfo, err := segment.Validate(v.Events, p.cfg.Limits)
	if reason, ok := segment.Reason(err); ok {
		reason = "rule_output:" + reason
		if err := p.reject.Reject(ctx, m.Attributes, m.Data, reason); err != nil {
			return m, info, 0, fmt.Errorf("reject message %s (%s): %w", m.ID, reason, err)
		}
		p.stats.Rejected.Add(1)
		slog.WarnContext(ctx, "rule output invalid", "message_id", m.ID, "reject_reason", reason)
		return m, info, Rejected, nil
	}
	if err != nil {
		return m, info, 0, err
	}
	p.stats.Rewritten.Add(1)
	m.Data = v.Events
	return m, rinfo, Stored, nil
}

// BuildRules loads the edge rules once (Pack must not store a segment
// before it knows the project's rules) and keeps refreshing them in the
// background every RULES_REFRESH until c closes.
func BuildRules(ctx context.Context, cfg config.Rules, db *store.DB, blobs blob.Store, c *closer.Stack) (*rules.Set, error) {
	lim := rules.DefaultLimits()
	lim.MemoryBytes = cfg.RulesMemoryBytes
	lim.Timeout = cfg.RulesTimeout
	lim.InitTimeout = max(lim.InitTimeout, 5*cfg.RulesTimeout)
	lim.MaxIdle = 2 * runtime.GOMAXPROCS(0)
	engine := rules.NewEngine(lim)
	c.Add(engine.Close)
	rs := rules.NewSet(engine, db, blobs, cfg.RulesMaxInputBytes)
	if err := rs.Refresh(ctx); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs.Run(bg, cfg.RulesRefresh)
	}()
	c.Add(func() { cancel(); <-done })
	return rs, nil
}
