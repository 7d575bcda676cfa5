//go:build wasip1

// Command wasm is the sampling rule module (see package sampling).
package main

import (
	"github.com/replayvault/replayvault/shared/rules/modules/sampling"
	"github.com/replayvault/replayvault/shared/rules/sdk"
)

func init() {
	sdk.Handle(sampling.Func)
	sdk.Describe(sampling.Describe)
}

func main() {}
