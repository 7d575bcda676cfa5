package sdk

import "fmt"

// Func is a rule: it receives one segment and decides its fate.
type Func func(in *Input) (*Output, error)

var handler Func

// Handle registers the module's rule. Call it from init; the last call wins.
func Handle(f Func) { handler = f }

// Handler returns the registered rule (nil before Handle).
func Handler() Func { return handler }

// Run decodes an input frame, runs the registered rule and encodes its
// output frame. The wasm exports call it; tests of a rule's logic may too.
func Run(f Func, input []byte) ([]byte, error) {
	in, err := DecodeInput(input)
	if err != nil {
		return nil, err
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
