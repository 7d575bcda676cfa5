//go:build wasip1

// Command loop never returns.
package main

import "github.com/replayvault/replayvault/shared/rules/sdk"

var sink int

func init() {
	sdk.Handle(func(in *sdk.Input) (*sdk.Output, error) {
		for i := 0; ; i++ {
			sink += i
		}
	})
}

func main() {}
