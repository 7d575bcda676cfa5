//go:build wasip1

// Command exit calls os.Exit in the middle of a call.
package main

import (
	"os"

	"github.com/replayvault/replayvault/shared/rules/sdk"
)

func init() {
	sdk.Handle(func(in *sdk.Input) (*sdk.Output, error) {
		os.Exit(3)
		return nil, nil
	})
}

func main() {}
