//go:build wasip1

// Command trap panics on a segment whose attribute trap is set and keeps the
// others.
package main

import "github.com/replayvault/replayvault/shared/rules/sdk"

func init() {
	sdk.Handle(func(in *sdk.Input) (*sdk.Output, error) {
		if in.Attributes["trap"] != "" {
			var m map[string]int
			m["boom"]++ // nil map write: a Go panic, the runtime exits
		}
		return sdk.Keep(), nil
	})
}

func main() {}
