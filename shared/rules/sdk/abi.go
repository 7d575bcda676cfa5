// Package sdk is the authoring kit for replayvault rule modules and the one
// definition of the ABI between Pack and a module.
//
// A rule module is a Go main package built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o rule.wasm ./path/to/rule
//
// that imports this package and registers its handler in init:
//
//	//go:build wasip1
//
//	package main
//
//	import "github.com/replayvault/replayvault/shared/rules/sdk"
//
//	func init() { sdk.Handle(rule) }
//
//	func rule(in *sdk.Input) (*sdk.Output, error) { return sdk.Keep(), nil }
//
//	func main() {}
//
// The exports, the memory exchange and the framing below are what the package
// hides; they are documented so that a module written without it (another
// language) can still be loaded.
//
// # Exports
//
//   - _initialize: the reactor entry point (Go's -buildmode=c-shared); Pack
//     calls it once per instance.
//   - rv_abi_version() -> i32: returns ABIVersion.
//   - rv_alloc(size i32) -> i32: returns the address of a buffer of size bytes
//     in the module's memory. The buffer stays valid until the next rv_alloc
//     or rv_handle call.
//   - rv_handle(size i32) -> i64: reads the input Pack wrote into the last
//     buffer from rv_alloc (size bytes) and returns the output's address in
//     the high 32 bits and its length in the low 32 bits. The output stays
//     valid until the next call. A length of 0 means the module failed.
//
// # Frames
//
// Input and output are each one frame: a 4-byte little-endian length N, N
// bytes of a JSON header, then a body. The input header is Header; its body
// is the segment's decompressed events, a JSON array of rrweb events exactly
// as received. The output header is Result; its body is present only when
// Result.Rewritten is true and then replaces the segment's events (Pack
// validates it again before storing it).
//
// # Describe and modes
//
// When Pack loads an assignment it calls the module once with a header
// whose Call is CallDescribe (and the assignment's Config, no events). The
// answer's Result.Wants chooses how the module sees each segment: ModeEvents
// (the frames above, and the default for a module that does not answer),
// ModeHeader (the header, no body) or ModeStrings: Pack walks the events
// and hands over a Table of only the strings the Wants may concern, with
// their rrweb context, in a binary frame that starts with a header length
// of 0; the module answers with Edits (see Table for both layouts). Masks
// that need no look at a value (Wants.MaskInputs, MaskAttributes) Pack
// applies itself. Register the describe answer with Describe and the
// strings rule with HandleStrings.
//
// # Sandbox
//
// A module imports only wasi_snapshot_preview1. There are no preopened
// directories, no environment and no arguments; the clock and the random
// source are deterministic; stdout and stderr are discarded (at most a few
// KiB are accepted per call). Any other WASI function answers ENOSYS. Each
// call runs under a memory cap and a time budget; a module that exceeds
// either, traps or exits is stopped and its instance discarded. The budget
// is enforced by metering: Pack rewrites the module to count function
// starts and loop iterations and to check the deadline every 131,072 of
// them (through an import it adds, replayvault.tick); a module may not
// import from "replayvault" itself, and may use only the instructions of
// WebAssembly 1.0 and of the sign-extension, saturating-conversion,
// bulk-memory and reference-type proposals (what Go emits): tail calls,
// exceptions and SIMD are refused.
package sdk

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// ABIVersion is the version of the frames and exports above.
const ABIVersion = 1

// Decisions a rule returns.
const (
	// DecisionKeep stores the segment (with rewritten events, if any).
	DecisionKeep = "keep"
	// DecisionDrop acks the segment without storing it (sampling).
	DecisionDrop = "drop"
	// DecisionReject sends the segment to the reject topic with Reason.
	DecisionReject = "reject"
)

// Header is the input frame's header: who the segment is and the rule's
// configuration.
type Header struct {
	ABI           int    `json:"abi"`
	ProjectID     int64  `json:"project_id"`
	ReplayID      string `json:"replay_id"`
	SegmentID     int    `json:"segment_id"`
	Type          string `json:"type"`
	RetentionDays int    `json:"retention_days"`
	// Attributes are the Pub/Sub message's attributes as received (for
	// example sdk, url, error set by the SDK or Ingest).
	Attributes map[string]string `json:"attributes,omitempty"`
	// Config is the assignment's configuration JSON (null when none).
	Config json.RawMessage `json:"config,omitempty"`
	// Call is empty for a segment, or CallDescribe (then the frame has no
	// events and only ABI and Config are set).
	Call string `json:"call,omitempty"`
}

// Input is what a rule receives.
type Input struct {
	Header
	// Events is the segment's JSON array of rrweb events.
	Events []byte
}

// Tag is a key/value label on the segment (for example a detected issue).
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Fingerprint groups a detection at several levels, coarse to fine (for
// example ["rage_click", "rage_click:/checkout", "rage_click:/checkout:button#pay"]),
// so that grouping can later be merged or split without rewriting data.
type Fingerprint struct {
	Kind   string   `json:"kind"`
	Levels []string `json:"levels"`
}

// Result is the output frame's header.
type Result struct {
	Decision     string        `json:"decision"`
	Reason       string        `json:"reason,omitempty"`
	Rewritten    bool          `json:"rewritten,omitempty"`
	Tags         []Tag         `json:"tags,omitempty"`
	Fingerprints []Fingerprint `json:"fingerprints,omitempty"`
	// Wants answers the describe call (see CallDescribe).
	Wants *Wants `json:"wants,omitempty"`
}

// Output is what a rule returns.
type Output struct {
	Result
	// Events replaces the segment's events when Rewritten is set.
	Events []byte
}

// Keep returns an Output that stores the segment unchanged.
func Keep() *Output { return &Output{Result: Result{Decision: DecisionKeep}} }

// Drop returns an Output that acks the segment without storing it.
func Drop(reason string) *Output {
	return &Output{Result: Result{Decision: DecisionDrop, Reason: reason}}
}

// Reject returns an Output that sends the segment to the reject topic.
func Reject(reason string) *Output {
	return &Output{Result: Result{Decision: DecisionReject, Reason: reason}}
}

// Rewrite sets the events that replace the segment's.
func (o *Output) Rewrite(events []byte) *Output {
	o.Rewritten, o.Events = true, events
	return o
}

// EncodeInput frames an input (Pack's side).
func EncodeInput(dst []byte, h *Header, events []byte) ([]byte, error) {
	return frame(dst, h, events)
}

// DecodeInput parses an input frame (the module's side). Events aliases b.
func DecodeInput(b []byte) (*Input, error) {
	var in Input
	body, err := unframe(b, &in.Header)
	if err != nil {
		return nil, fmt.Errorf("decode input: %w", err)
	}
	in.Events = body
	return &in, nil
}

// EncodeOutput frames an output (the module's side).
func EncodeOutput(dst []byte, o *Output) ([]byte, error) {
	var body []byte
	if o.Rewritten {
		body = o.Events
	}
	return frame(dst, &o.Result, body)
}

// DecodeOutput parses an output frame (Pack's side). Events aliases b.
func DecodeOutput(b []byte) (*Output, error) {
	var o Output
	body, err := unframe(b, &o.Result)
	if err != nil {
		return nil, fmt.Errorf("decode output: %w", err)
	}
	if o.Rewritten {
		o.Events = body
	} else if len(body) > 0 {
		return nil, errors.New("decode output: events without rewritten")
	}
	return &o, nil
}

func frame(dst []byte, header any, body []byte) ([]byte, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h)))
	dst = append(dst, h...)
	return append(dst, body...), nil
}

func unframe(b []byte, header any) ([]byte, error) {
	if len(b) < 4 {
		return nil, errors.New("frame shorter than its length prefix")
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, errors.New("frame header longer than the frame")
	}
	if err := json.Unmarshal(b[4:4+n], header); err != nil {
		return nil, fmt.Errorf("frame header: %w", err)
	}
	return b[4+n:], nil
}
