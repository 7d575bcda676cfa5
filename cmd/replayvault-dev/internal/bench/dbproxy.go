package bench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DBProxy forwards PostgreSQL connections and counts the round trips each
// database receives: every Sync of the extended protocol and every simple
// Query makes the server answer ReadyForQuery, which the client waits for.
// It can also delay each round trip, to model the network distance to a
// managed database.
type DBProxy struct {
	lis      net.Listener
	upstream string
	latency  atomic.Int64 // nanoseconds per round trip

	mu    sync.Mutex
	trips map[string]*atomic.Int64 // by database name
	wg    sync.WaitGroup
}

// StartDBProxy listens on 127.0.0.1 and forwards to upstream (host:port).
func StartDBProxy(upstream string) (*DBProxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("db proxy listen: %w", err)
	}
	p := &DBProxy{lis: lis, upstream: upstream, trips: map[string]*atomic.Int64{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns host:port.
func (p *DBProxy) Addr() string { return p.lis.Addr().String() }

// SetLatency delays every round trip by d.
func (p *DBProxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// RoundTrips returns the round trips counted so far, by database.
func (p *DBProxy) RoundTrips() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.trips))
	for db, n := range p.trips {
		out[db] = n.Load()
	}
	return out
}

// Close stops accepting; open connections end when either side closes.
func (p *DBProxy) Close() error {
	err := p.lis.Close()
	p.wg.Wait()
	return err
}

func (p *DBProxy) counter(db string) *atomic.Int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.trips[db]
	if c == nil {
		c = new(atomic.Int64)
		p.trips[db] = c
	}
	return c
}

func (p *DBProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				slog.Error("db proxy accept", "error", err)
			}
			return
		}
		go p.serve(c)
	}
}

func (p *DBProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		slog.Error("db proxy dial", "error", err)
		return
	}
	defer server.Close()
	go func() {
		_, _ = io.Copy(client, server)
		client.Close()
	}()
	if err := p.forward(bufio.NewReaderSize(client, 64<<10), bufio.NewWriterSize(server, 64<<10)); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		slog.Debug("db proxy connection ended", "error", err)
	}
}

// Protocol constants (PostgreSQL frontend/backend protocol 3.0).
const (
	pgSSLRequest    = 80877103
	pgGSSENCRequest = 80877104
	pgCancelRequest = 80877102
)

// forward copies the client's messages to the server, reading the startup
// message for the database name and counting round trips after it.
func (p *DBProxy) forward(r *bufio.Reader, w *bufio.Writer) error {
	var trips *atomic.Int64
	// Startup phase: length-prefixed messages without a type byte. SSL and
	// GSS encryption requests come first and are answered with one byte
	// (which the server-to-client copy passes on); then the real startup.
	for trips == nil {
		body, err := readStartup(r)
		if err != nil {
			return err
		}
		if err := writeStartup(w, body); err != nil {
			return err
		}
		switch code := binary.BigEndian.Uint32(body); code {
		case pgSSLRequest, pgGSSENCRequest:
			continue
		case pgCancelRequest:
			return nil
		default:
			trips = p.counter(startupDatabase(body[4:]))
		}
	}
	for {
		if r.Buffered() == 0 {
			// About to block on the client: send what we have.
			if err := w.Flush(); err != nil {
				return err
			}
		}
		typ, err := r.ReadByte()
		if err != nil {
			return err
		}
		var lenb [4]byte
		if _, err := io.ReadFull(r, lenb[:]); err != nil {
			return err
		}
		n := int64(binary.BigEndian.Uint32(lenb[:])) - 4
		if n < 0 {
			return fmt.Errorf("db proxy: bad message length %d", n+4)
		}
		if err := w.WriteByte(typ); err != nil {
			return err
		}
		if _, err := w.Write(lenb[:]); err != nil {
			return err
		}
		if _, err := io.CopyN(w, r, n); err != nil {
			return err
		}
		switch typ {
		case 'S', 'Q': // Sync, Query: the server answers ReadyForQuery
			trips.Add(1)
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if err := w.Flush(); err != nil {
				return err
			}
		case 'X': // Terminate
			return w.Flush()
		}
	}
}

func readStartup(r *bufio.Reader) ([]byte, error) {
	var lenb [4]byte
	if _, err := io.ReadFull(r, lenb[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(lenb[:])) - 4
	if n < 4 || n > 1<<16 {
		return nil, fmt.Errorf("db proxy: bad startup length %d", n+4)
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}

func writeStartup(w *bufio.Writer, body []byte) error {
	var lenb [4]byte
	binary.BigEndian.PutUint32(lenb[:], uint32(len(body)+4))
	if _, err := w.Write(lenb[:]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

// startupDatabase finds the "database" parameter of a startup message's
// key/value list (it defaults to the user name).
func startupDatabase(params []byte) string {
	var user, db string
	for len(params) > 1 {
		k, rest, ok := cutNUL(params)
		if !ok {
			break
		}
		v, rest2, ok := cutNUL(rest)
		if !ok {
			break
		}
		switch k {
		case "database":
			db = v
		case "user":
			user = v
		}
		params = rest2
	}
	if db == "" {
		return user
	}
	return db
}

func cutNUL(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}
