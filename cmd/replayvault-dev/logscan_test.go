package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScanLogs: scanLogs passes clean logs, counts traced lines, and
// catches a secret and a payload excerpt, plain or base64.
func TestScanLogs(t *testing.T) {
	payload := []byte(`[{"type":3,"data":{"text":"the user typed this exact sentence into a form field"}}]`)
	ex := string(payload[len(payload)/3 : len(payload)/3+scanWindow])
	quoted := []byte(`[{"a":"b","c":"d","e":"f","g":"h","i":"j","k":"l","m":"n","o":"p"}]`)
	qex := string(quoted[len(quoted)/3 : len(quoted)/3+scanWindow])
	clean := `{"severity":"INFO","message":"batch flushed","logging.googleapis.com/trace":"projects/p/traces/abc"}` + "\n" +
		`{"severity":"INFO","message":"start"}` + "\n"
	tests := []struct {
		name, log, wantErr string
	}{
		{"clean", clean, ""},
		{"token", clean + `{"message":"auth","header":"Bearer tok-123456"}` + "\n", "the token"},
		{"excerpt in a JSON string", clean + `{"message":"bad","error":"` + strings.ReplaceAll(qex, `"`, `\"`) + `"}` + "\n", "segment 1 excerpt 0 (JSON string)"},
		{"raw excerpt", clean + "panic: " + ex + "\n", "segment 0 excerpt 0"},
		{"base64 excerpt", clean + `{"data":"` + base64.StdEncoding.EncodeToString([]byte(ex)) + `"}` + "\n", "(base64)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pack.log")
			if err := os.WriteFile(path, []byte(tc.log), 0o644); err != nil {
				t.Fatal(err)
			}
			s := &stack{funcs: map[string]*function{"Pack": {name: "Pack", logPath: path}}}
			lines, traced, err := scanLogs(s, map[string]string{"token": "tok-123456"}, [][]byte{payload, quoted})
			if tc.wantErr == "" {
				if tc.name == "clean" && (err != nil || lines != 2 || traced != 1) {
					t.Errorf("clean log: %d lines, %d traced, %v; want 2, 1, nil", lines, traced, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}
