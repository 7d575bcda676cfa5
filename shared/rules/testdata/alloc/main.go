//go:build wasip1

// Command alloc allocates memory until something stops it.
package main

import "github.com/replayvault/replayvault/shared/rules/sdk"

var hoard [][]byte

func init() {
	sdk.Handle(func(in *sdk.Input) (*sdk.Output, error) {
		for {
			b := make([]byte, 8<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = byte(i)
			}
			hoard = append(hoard, b)
		}
	})
}

func main() {}
