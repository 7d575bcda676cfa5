package chaos

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
)

// dbProxy is a TCP proxy in front of PostgreSQL that, while enabled, cuts
// a share of the connections at the moment the server answers: the
// statement (a COMMIT among them) may have taken effect, but the client
// never learns it (result unknown), as with a crash or a network cut.
type dbProxy struct {
	lis      net.Listener
	upstream string

	mu   sync.Mutex
	rng  *rand.Rand
	rate float64

	cuts atomic.Int64
}

func startDBProxy(upstream string) (*dbProxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &dbProxy{lis: lis, upstream: upstream, rng: rand.New(rand.NewPCG(3, 4))}
	go p.serve()
	return p, nil
}

func (p *dbProxy) addr() string { return p.lis.Addr().String() }

func (p *dbProxy) close() { p.lis.Close() }

// set cuts rate of the server's answers (0: none).
func (p *dbProxy) set(rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = rate
}

func (p *dbProxy) cut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate > 0 && p.rng.Float64() < p.rate
}

func (p *dbProxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *dbProxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		client.Close()
		return
	}
	defer client.Close()
	defer server.Close()
	go func() {
		_, _ = io.Copy(server, client)
		server.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if p.cut() {
				p.cuts.Add(1)
				return // the answer is lost with the connection
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
