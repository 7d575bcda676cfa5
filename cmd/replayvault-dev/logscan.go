package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/replayvault/replayvault/shared/logging"
)

// scanWindow is the length of the payload excerpts scanLogs looks for: long
// enough that a match is a leak, not a common JSON fragment.
const scanWindow = 24

// scanLogs reads every function's log and fails if a line holds a secret
// (token, keys) or an excerpt of a recorded segment, plain or base64. It
// returns how many JSON lines carried a trace field: a session's requests
// are traced, so none would mean the log/trace join is broken.
func scanLogs(s *stack, secrets map[string]string, payloads [][]byte) (lines, traced int, err error) {
	forbidden := map[string]string{}
	for what, v := range secrets {
		if v != "" {
			forbidden[what] = v
		}
	}
	for i, p := range payloads {
		for j, off := range []int{len(p) / 3, 2 * len(p) / 3} {
			if off+scanWindow <= len(p) {
				ex := p[off : off+scanWindow]
				forbidden[fmt.Sprintf("segment %d excerpt %d", i, j)] = string(ex)
				forbidden[fmt.Sprintf("segment %d excerpt %d (base64)", i, j)] = base64.StdEncoding.EncodeToString(ex)[:scanWindow]
				if q, err := json.Marshal(string(ex)); err == nil {
					// As a JSON log line would quote it.
					forbidden[fmt.Sprintf("segment %d excerpt %d (JSON string)", i, j)] = string(q[1 : len(q)-1])
				}
			}
		}
	}
	for _, name := range []string{"Pack", "Serve", "Shred"} {
		f, ok := s.funcs[name]
		if !ok {
			continue
		}
		file, err := os.Open(f.logPath)
		if err != nil {
			return lines, traced, err
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			lines++
			for what, v := range forbidden {
				if strings.Contains(line, v) {
					file.Close()
					return lines, traced, fmt.Errorf("%s: a log line holds the %s: %.300s", f.logPath, what, line)
				}
			}
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m[logging.TraceKey] != nil {
				traced++
			}
		}
		err = sc.Err()
		file.Close()
		if err != nil {
			return lines, traced, fmt.Errorf("read %s: %w", f.logPath, err)
		}
	}
	return lines, traced, nil
}
