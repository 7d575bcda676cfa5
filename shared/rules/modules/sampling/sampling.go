// Package sampling is the sampling rule: it keeps a replay or drops it by a
// deterministic hash of its id, at a rate chosen by the first rule whose
// conditions hold on the replay's attributes. The decision depends only on
// the replay id, replay-level attributes and the config, so every segment of
// a replay gets the same one and a kept replay is always complete.
//
// The attributes it reads are replay-level by contract: the SDK (or Ingest)
// sets them the same on every segment of a replay:
//
//	url    the page the replay started on
//	error  "true" when the session saw an error (the SDK's error-triggered mode)
//	sdk    the SDK name, for example "sentry.javascript.browser"
//
// Config:
//
//	{"rate": 0.1, "salt": "2026-11",
//	 "rules": [{"error": true, "rate": 1},
//	           {"url_prefix": "https://shop.example/checkout", "rate": 0.5},
//	           {"sdk": "posthog-js", "url_contains": "/admin", "rate": 0}]}
package sampling

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"strings"

	"github.com/replayvault/replayvault/shared/rules/sdk"
)

// Config is the assignment's configuration.
type Config struct {
	// Rate is the share of replays kept when no rule matches (0..1).
	Rate float64 `json:"rate"`
	// Salt changes which replays fall under the rate.
	Salt  string `json:"salt"`
	Rules []Rule `json:"rules"`
}

// Rule sets the rate for the replays it matches; every set condition must
// hold.
type Rule struct {
	URLPrefix   string  `json:"url_prefix"`
	URLContains string  `json:"url_contains"`
	Error       *bool   `json:"error"`
	SDK         string  `json:"sdk"`
	Rate        float64 `json:"rate"`
}

// Func is the rule function registered by the module.
func Func(in *sdk.Input) (*sdk.Output, error) {
	c := Config{Rate: 1}
	if len(in.Config) > 0 && string(in.Config) != "null" {
		if err := json.Unmarshal(in.Config, &c); err != nil {
			return sdk.Reject("sampling_bad_config"), nil
		}
	}
	if Keep(in.ReplayID, in.Attributes, c) {
		return sdk.Keep(), nil
	}
	return sdk.Drop("sampled_out"), nil
}

// Keep is the decision for one replay.
func Keep(replayID string, attrs map[string]string, c Config) bool {
	rate := c.Rate
	for _, r := range c.Rules {
		if r.matches(attrs) {
			rate = r.Rate
			break
		}
	}
	return Position(replayID, c.Salt) < rate
}

// Position maps a replay id to [0, 1) uniformly and deterministically.
func Position(replayID, salt string) float64 {
	h := sha256.Sum256([]byte(salt + "\x00" + strings.ToLower(replayID)))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}

func (r Rule) matches(attrs map[string]string) bool {
	url := attrs["url"]
	if r.URLPrefix != "" && !strings.HasPrefix(url, r.URLPrefix) {
		return false
	}
	if r.URLContains != "" && !strings.Contains(url, r.URLContains) {
		return false
	}
	if r.SDK != "" && attrs["sdk"] != r.SDK {
		return false
	}
	if r.Error != nil {
		e := attrs["error"] == "true" || attrs["error"] == "1"
		if e != *r.Error {
			return false
		}
	}
	return true
}

// Describe answers the describe call: the rule decides on the segment's
// header alone, so Pack need not copy the events into the sandbox.
func Describe([]byte) sdk.Wants { return sdk.Wants{Mode: sdk.ModeHeader} }
