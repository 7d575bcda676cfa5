//go:build wasip1

// Command leak keeps 1 MiB more on every call, as a module with an
// unbounded cache would.
package main

import "github.com/replayvault/replayvault/shared/rules/sdk"

var kept [][]byte

func init() {
	sdk.Handle(func(in *sdk.Input) (*sdk.Output, error) {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		kept = append(kept, b)
		return sdk.Keep(), nil
	})
}

func main() {}
