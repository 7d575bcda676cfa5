package chaos

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
)

// uploadGate stands in front of the fault proxy and lets a scenario act at
// an exact moment of an upload: before it reaches storage (before), or once
// storage has stored it but before the uploader hears so (after). A hook
// returns true when it fired; the gate then drops the connection, as a
// crashed uploader would never see the answer anyway.
type uploadGate struct {
	next http.Handler

	mu            sync.Mutex
	before, after func() bool

	uploads atomic.Int64
}

func (g *uploadGate) set(before, after func() bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.before, g.after = before, after
}

func (g *uploadGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isUpload(r) {
		g.next.ServeHTTP(w, r)
		return
	}
	g.uploads.Add(1)
	g.mu.Lock()
	before, after := g.before, g.after
	g.mu.Unlock()
	if before != nil && before() {
		_, _ = io.Copy(io.Discard, r.Body)
		panic(http.ErrAbortHandler)
	}
	if after == nil {
		g.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	g.next.ServeHTTP(rec, r)
	if rec.Code/100 == 2 && after() {
		panic(http.ErrAbortHandler)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
