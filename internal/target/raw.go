package target

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// RawServer answers each request it reads on 127.0.0.1 with fixed bytes,
// whatever they are, and closes the connection: a server that breaks HTTP
// on purpose (an oversized or malformed response head, say). It counts the
// requests it read. Close it when done; it is safe for concurrent use.
type RawServer struct {
	URL string // http://127.0.0.1:PORT/

	requests atomic.Int64
	ln       net.Listener
	wg       sync.WaitGroup
}

// StartRaw starts a [RawServer] that answers with response.
func StartRaw(response string) (*RawServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &RawServer{URL: "http://" + ln.Addr().String() + "/", ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				s.requests.Add(1)
				io.WriteString(c, response)
			}()
		}
	}()
	return s, nil
}

// Requests returns how many requests the server has read.
func (s *RawServer) Requests() int64 { return s.requests.Load() }

// Close stops the server and waits for its connections to end.
func (s *RawServer) Close() {
	s.ln.Close()
	s.wg.Wait()
}
