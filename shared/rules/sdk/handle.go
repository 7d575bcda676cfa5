package sdk

import "fmt"

// Func is a rule: it receives one segment and decides its fate.
type Func func(in *Input) (*Output, error)

// StringsFunc is a ModeStrings rule: it receives the strings Pack selected
// (see Table) and returns its edits, in ascending Index order.
type StringsFunc func(t *Table) ([]Edit, error)

// DescribeFunc answers the describe call for an assignment's config (see
// CallDescribe).
type DescribeFunc func(config []byte) Wants

var (
	handler  Func
	strs     StringsFunc
	describe DescribeFunc
)

// Handle registers the module's rule. Call it from init; the last call wins.
func Handle(f Func) { handler = f }

// Describe registers the module's answer to the describe call. Without one
// the module gets ModeEvents. Call it from init.
func Describe(d DescribeFunc) { describe = d }

// HandleStrings registers the module's ModeStrings rule, used for the
// assignments whose describe answer asks for ModeStrings; the Func
// registered with Handle gets the segments of the others (a config it
// cannot serve that way, for example). Call it from init.
func HandleStrings(f StringsFunc) { strs = f }

// Handler returns the registered rule (nil before Handle).
func Handler() Func { return handler }

// Run decodes an input frame, runs the registered rule and encodes its
// output frame. The wasm exports call it; tests of a rule's logic may too.
func Run(f Func, input []byte) ([]byte, error) {
	if IsTable(input) {
		return runStrings(input)
	}
	in, err := DecodeInput(input)
	if err != nil {
		return nil, err
	}
	if in.Call == CallDescribe {
		out := Keep()
		if describe != nil {
			w := describe(in.Config)
			out.Wants = &w
		}
		return EncodeOutput(nil, out)
	}
	out, err := f(in)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = Keep()
	}
	switch out.Decision {
	case DecisionKeep, DecisionDrop, DecisionReject:
	default:
		return nil, fmt.Errorf("unknown decision %q", out.Decision)
	}
	return EncodeOutput(nil, out)
}

// table and edits are reused from call to call: a module instance serves
// one call at a time.
var (
	table    Table
	editsBuf []byte
)

func runStrings(input []byte) ([]byte, error) {
	if strs == nil {
		return nil, fmt.Errorf("no strings rule registered")
	}
	if err := DecodeTable(input, &table); err != nil {
		return nil, err
	}
	edits, err := strs(&table)
	if err != nil {
		return nil, err
	}
	editsBuf = AppendEdits(editsBuf[:0], edits)
	return editsBuf, nil
}
