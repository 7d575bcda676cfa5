package chaos

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// pushProxy stands between the Pub/Sub emulator's push delivery and Pack:
// it forwards each push unchanged (so it works whatever way Pack decodes
// the push body) and records which messages Pack acked (answered 2xx),
// which is all the invariant needs to know. A push Pack cannot be reached
// for (killed) is answered 503, and the emulator redelivers.
type pushProxy struct {
	hc *http.Client

	mu     sync.Mutex
	target string
	onAck  func(attrs map[string]string)

	deliveries, acks, nacks, unreachable, overloaded atomic.Int64
}

func newPushProxy(target string, timeout time.Duration, onAck func(map[string]string)) *pushProxy {
	return &pushProxy{
		hc:     &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}},
		target: target,
		onAck:  onAck,
	}
}

func (p *pushProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.deliveries.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read push", http.StatusBadRequest)
		return
	}
	var push struct {
		Message struct {
			Attributes map[string]string `json:"attributes"`
		} `json:"message"`
	}
	_ = json.Unmarshal(body, &push) // a body we cannot read is Pack's to judge
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, target+r.URL.Path, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		p.unreachable.Add(1)
		http.Error(w, "pack unreachable", http.StatusServiceUnavailable)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode/100 == 2:
		p.acks.Add(1)
		p.onAck(push.Message.Attributes)
	case resp.StatusCode == http.StatusTooManyRequests:
		p.overloaded.Add(1)
		p.nacks.Add(1)
	default:
		p.nacks.Add(1)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}
