//go:build wasip1

// Command echo keeps every segment and reports what it saw: its config, the
// segment's identity and how many times this instance has been called.
package main

import (
	"strconv"

	"github.com/replayvault/replayvault/shared/rules/sdk"
)

var calls int

func init() {
	sdk.Handle(func(in *sdk.Input) (*sdk.Output, error) {
		calls++
		o := sdk.Keep()
		o.Tags = []sdk.Tag{
			{Key: "config", Value: string(in.Config)},
			{Key: "project", Value: strconv.FormatInt(in.ProjectID, 10)},
			{Key: "calls", Value: strconv.Itoa(calls)},
			{Key: "events_len", Value: strconv.Itoa(len(in.Events))},
		}
		switch in.Attributes["echo"] {
		case "drop":
			return sdk.Drop("echo"), nil
		case "reject":
			return sdk.Reject("echo said no"), nil
		case "rewrite":
			return o.Rewrite([]byte(in.Attributes["events"])), nil
		}
		return o, nil
	})
}

func main() {}
