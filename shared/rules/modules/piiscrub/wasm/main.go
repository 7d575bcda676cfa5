//go:build wasip1

// Command wasm is the PII scrub rule module (see package piiscrub). Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o piiscrub.wasm ./shared/rules/modules/piiscrub/wasm
package main

import (
	"github.com/replayvault/replayvault/shared/rules/modules/piiscrub"
	"github.com/replayvault/replayvault/shared/rules/sdk"
)

func init() {
	sdk.Handle(piiscrub.Func)
	sdk.Describe(piiscrub.Describe)
	sdk.HandleStrings(piiscrub.Strings)
}

func main() {}
