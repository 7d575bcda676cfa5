package chaos

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is one kind of failure the proxy injects.
type Fault int

// The faults, as a real GCS front end or network shows them.
const (
	Fault5xx      Fault = iota // 503 before the request reaches the server
	FaultReset                 // the connection is closed with no answer
	FaultSlow                  // the answer is delayed, then sent whole
	FaultTruncate              // a ranged read's body stops half way
	numFaults
)

// faultProxy is an HTTP proxy in front of fake-gcs-server that injects
// faults into a share of the requests it forwards. Only requests that
// match (uploads, ranged reads) are eligible.
type faultProxy struct {
	rp *httputil.ReverseProxy

	mu    sync.Mutex
	rng   *rand.Rand
	rate  float64
	match func(*http.Request) bool

	injected [numFaults]atomic.Int64
	seen     atomic.Int64
}

func newFaultProxy(target string) (*faultProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	// fake-gcs-server reads the bucket from a Host that is not its own
	// (virtual-hosted style), so forward with its host.
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = u.Host
	}}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		fmt.Fprintf(os.Stderr, "chaos proxy: %s %s: %v\n", r.Method, r.URL, err)
		w.WriteHeader(http.StatusBadGateway)
	}
	return &faultProxy{rp: rp, rng: rand.New(rand.NewPCG(1, 2))}, nil
}

// set injects faults into rate of the requests match accepts (rate 0: none).
func (p *faultProxy) set(rate float64, match func(*http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate, p.match = rate, match
}

func (p *faultProxy) pick(r *http.Request) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rate == 0 || p.match == nil || !p.match(r) || p.rng.Float64() >= p.rate {
		return 0, false
	}
	f := Fault(p.rng.IntN(int(numFaults)))
	if f == FaultTruncate && r.Header.Get("Range") == "" {
		f = Fault5xx
	}
	return f, true
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.seen.Add(1)
	f, ok := p.pick(r)
	if !ok {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.injected[f].Add(1)
	switch f {
	case Fault5xx:
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "chaos: injected 503", http.StatusServiceUnavailable)
	case FaultReset:
		panic(http.ErrAbortHandler) // net/http closes the connection
	case FaultSlow:
		time.Sleep(300 * time.Millisecond)
		p.rp.ServeHTTP(w, r)
	case FaultTruncate:
		p.rp.ServeHTTP(&truncating{ResponseWriter: w}, r)
		panic(http.ErrAbortHandler)
	}
}

// injectedTotal is how many faults were injected.
func (p *faultProxy) injectedTotal() int64 {
	var n int64
	for i := range p.injected {
		n += p.injected[i].Load()
	}
	return n
}

// truncating passes headers (with the full Content-Length) and the first
// half of the body, then drops the rest.
type truncating struct {
	http.ResponseWriter
	left int64
	set  bool
}

func (t *truncating) WriteHeader(code int) {
	if n := t.Header().Get("Content-Length"); n != "" {
		var total int64
		for _, c := range n {
			total = total*10 + int64(c-'0')
		}
		t.left, t.set = total/2, true
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *truncating) Write(b []byte) (int, error) {
	if !t.set {
		t.left, t.set = int64(len(b)/2), true
	}
	if int64(len(b)) > t.left {
		b = b[:t.left]
	}
	n, err := t.ResponseWriter.Write(b)
	t.left -= int64(n)
	return n, err
}

// isUpload matches object writes; isRangedRead matches media reads.
func isUpload(r *http.Request) bool {
	return r.Method == http.MethodPost || r.Method == http.MethodPut
}

func isRead(r *http.Request) bool {
	return r.Method == http.MethodGet && !strings.Contains(r.URL.Path, "/storage/v1/b/") || r.Header.Get("Range") != ""
}
