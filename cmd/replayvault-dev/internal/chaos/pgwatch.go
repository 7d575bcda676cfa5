package chaos

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// pgWatch is a TCP proxy in front of PostgreSQL that reads the protocol
// the client speaks, so a scenario can act at an exact moment of a Pack
// flush: when the COMMIT of a transaction that inserted a blob row is sent
// (onCommitSent) and when the server's answer to it arrives, before the
// client sees it (onCommitAnswer). A hook returns true when it fired; the
// proxy then drops the connection.
type pgWatch struct {
	lis      net.Listener
	upstream string

	mu             sync.Mutex
	onCommitSent   func() bool
	onCommitAnswer func() bool

	flushCommits atomic.Int64 // flush COMMITs seen
}

func startPGWatch(upstream string) (*pgWatch, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	w := &pgWatch{lis: lis, upstream: upstream}
	go w.serve()
	return w, nil
}

func (w *pgWatch) addr() string { return w.lis.Addr().String() }

func (w *pgWatch) close() { w.lis.Close() }

// hooks sets the hooks (nil: none).
func (w *pgWatch) hooks(sent, answer func() bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onCommitSent, w.onCommitAnswer = sent, answer
}

func (w *pgWatch) hook(answer bool) func() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if answer {
		return w.onCommitAnswer
	}
	return w.onCommitSent
}

func (w *pgWatch) serve() {
	for {
		c, err := w.lis.Accept()
		if err != nil {
			return
		}
		go w.pipe(c)
	}
}

// pipe forwards one connection, watching the client's messages.
func (w *pgWatch) pipe(client net.Conn) {
	server, err := net.Dial("tcp", w.upstream)
	if err != nil {
		client.Close()
		return
	}
	defer client.Close()
	defer server.Close()
	var commitPending atomic.Bool // a flush COMMIT was sent; its answer not yet seen
	go func() {
		defer server.Close()
		defer client.Close()
		_ = w.clientToServer(client, server, &commitPending) // ends with the connection
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if commitPending.Swap(false) && bytes.Contains(buf[:n], []byte("COMMIT\x00")) {
				if h := w.hook(true); h != nil && h() {
					return // the client never learns that it committed
				}
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

// clientToServer forwards the client's messages one by one. The first
// messages have no type byte (startup, or an SSL/GSS request answered with
// one byte before the real startup).
func (w *pgWatch) clientToServer(client, server net.Conn, commitPending *atomic.Bool) error {
	r := bufio.NewReaderSize(client, 64<<10)
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n < 8 || n > 1<<20 {
			return fmt.Errorf("startup message of %d bytes", n)
		}
		msg := make([]byte, n)
		copy(msg, hdr[:])
		if _, err := io.ReadFull(r, msg[8:]); err != nil {
			return err
		}
		if _, err := server.Write(msg); err != nil {
			return err
		}
		code := binary.BigEndian.Uint32(hdr[4:])
		if code != 80877103 && code != 80877104 { // not SSLRequest, GSSENCRequest
			break
		}
	}
	// A flush starts with INSERT INTO blobs, sent once as a Parse of a named
	// statement (pgx caches statements per connection) and afterwards only
	// bound by name.
	inFlush := false
	blobStmts := map[string]bool{}
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n < 4 {
			return fmt.Errorf("message %q of length %d", hdr[0], n)
		}
		msg := make([]byte, 5+int(n)-4)
		copy(msg, hdr[:])
		if _, err := io.ReadFull(r, msg[5:]); err != nil {
			return err
		}
		body := msg[5:]
		fire := false
		switch hdr[0] {
		case 'P': // Parse: statement name, text
			name, rest, _ := bytes.Cut(body, []byte{0})
			if bytes.Contains(rest, []byte("INSERT INTO blobs")) {
				blobStmts[string(name)] = true
				inFlush = true
			}
		case 'B': // Bind: portal name, statement name
			_, rest, _ := bytes.Cut(body, []byte{0})
			name, _, _ := bytes.Cut(rest, []byte{0})
			if blobStmts[string(name)] {
				inFlush = true
			}
		case 'Q': // simple query
			text := bytes.ToLower(bytes.TrimSpace(bytes.TrimRight(body, "\x00")))
			switch {
			case bytes.Contains(body, []byte("INSERT INTO blobs")):
				inFlush = true
			case inFlush && bytes.Equal(text, []byte("commit")):
				inFlush, fire = false, true
				commitPending.Store(true)
				w.flushCommits.Add(1)
			case bytes.Equal(text, []byte("rollback")):
				inFlush = false
			}
		}
		if _, err := server.Write(msg); err != nil {
			return err
		}
		if fire {
			if h := w.hook(false); h != nil && h() {
				return nil
			}
		}
	}
}
