package target

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// hijack takes over an HTTP/1 connection. It reports false under HTTP/2,
// where there is no connection of the request's own to take.
func hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, bool) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, false
	}
	return conn, rw, true
}

// rst closes conn so that the peer sees a TCP RST rather than a FIN: with
// SO_LINGER 0 the kernel drops unsent data and resets. Under TLS the raw
// connection is closed, so no close_notify alert is sent either.
func rst(conn net.Conn) {
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

func (s *Server) serveReset(w http.ResponseWriter, _ *http.Request) {
	conn, _, ok := hijack(w)
	if !ok {
		// HTTP/2: abort the handler, which resets the stream.
		panic(http.ErrAbortHandler)
	}
	rst(conn)
}

// partialHead is the start of a response cut off inside a header.
const partialHead = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Len"

func (s *Server) serveResetMid(w http.ResponseWriter, _ *http.Request) {
	conn, _, ok := hijack(w)
	if !ok {
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	_, _ = io.WriteString(conn, partialHead)
	rst(conn)
}

// shortHead announces 1000 bytes; serveShort sends 10.
const shortHead = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 1000\r\n\r\n"

func (s *Server) serveShort(w http.ResponseWriter, _ *http.Request) {
	conn, _, ok := hijack(w)
	if !ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(chunk[:10])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	_, _ = io.WriteString(conn, shortHead+string(chunk[:10]))
	_ = conn.Close()
}

func (s *Server) serveStall(w http.ResponseWriter, r *http.Request) {
	q := query(r)
	d, err := qDuration(q, "for", 10*time.Second)
	if err != nil {
		badRequest(w, err)
		return
	}
	if !s.wait(r.Context(), d) {
		return
	}
	w.Header()["Content-Type"] = textPlain
	w.Header()["Content-Length"] = s.bodyCL
	_, _ = w.Write(s.body)
}

func (s *Server) serveDrip(w http.ResponseWriter, r *http.Request) {
	q := query(r)
	n, err := qInt(q, "bytes", 10)
	if err != nil {
		badRequest(w, err)
		return
	}
	every, err := qDuration(q, "every", time.Second)
	if err != nil {
		badRequest(w, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header()["Content-Type"] = textPlain
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	for i := 0; i < n; i++ {
		if !s.wait(r.Context(), every) {
			return
		}
		if _, err := w.Write(chunk[i%len(pattern) : i%len(pattern)+1]); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func (s *Server) serveBig(w http.ResponseWriter, r *http.Request) {
	size, err := qSize(query(r), "size", 20<<20)
	if err != nil {
		badRequest(w, err)
		return
	}
	w.Header()["Content-Type"] = textPlain
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	_ = writeBody(w, size)
}
