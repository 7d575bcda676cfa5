//go:build wasip1

// Command wasm is the detection rule module (see package detect).
package main

import (
	"github.com/replayvault/replayvault/shared/rules/modules/detect"
	"github.com/replayvault/replayvault/shared/rules/sdk"
)

func init() { sdk.Handle(detect.Func) }

func main() {}
