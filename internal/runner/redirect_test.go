package runner

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/testnet"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// TestRedirectFailureRecords checks that a redirect that fails keeps what
// was received: the 3xx's status, proto and, when redirects were followed
// before it, the URL that answered it as final_url.
func TestRedirectFailureRecords(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch r.URL.Path {
		case "/loc":
			// A Location as given, parsable or not.
			w.Header()["Location"] = []string{q.Get("to")}
			code, _ := strconv.Atoi(q.Get("code"))
			w.WriteHeader(code)
		case "/hop":
			http.Redirect(w, r, q.Get("to"), http.StatusMovedPermanently)
		case "/loop":
			n, _ := strconv.Atoi(q.Get("n"))
			http.Redirect(w, r, "/loop?n="+strconv.Itoa(n+1), http.StatusFound)
		default:
			w.Write([]byte("end"))
		}
	})
	loc := func(to string, code int) string {
		return "/loc?" + url.Values{"code": {strconv.Itoa(code)}, "to": {to}}.Encode()
	}
	tests := []struct {
		name      string
		path      string
		status    int
		finalPath string // "" when no redirect was followed
		message   string
		hidden    string
	}{
		{name: "file scheme", path: loc("file:///etc/passwd", 302), status: 302, message: "file:///etc/passwd"},
		{name: "gopher scheme", path: loc("gopher://h:70/x", 301), status: 301, message: "gopher://h:70/x"},
		{name: "unparsable Location", path: loc("http://bob:Usec/ret1@host/", 302), status: 302,
			message: `Location "http://bob:***@host/" is not a valid URL`, hidden: "Usec"},
		{name: "unparsable Location after a hop", path: "/hop?" + url.Values{"to": {loc("http://ho st/", 307)}}.Encode(), status: 307,
			finalPath: loc("http://ho st/", 307), message: "not a valid URL"},
		{name: "too many redirects", path: "/loop?n=0", status: 302, finalPath: "/loop?n=3", message: "too many redirects"},
		{name: "port out of range", path: loc("http://user:hunter2secret@127.0.0.1:99999/ok", 302), status: 302,
			message: "redirect to http://user:***@127.0.0.1:99999/ok not followed: port 99999 is out of range", hidden: "hunter2secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := transport.New(transport.Options{MaxRedirects: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			// A redirect that fails is not retried.
			opts := Options{Limit: 1, PerHost: 1, Timeout: 5 * time.Second, Retries: 2, Backoff: time.Millisecond, Routes: []Route{{Client: c}}}
			recs, err := runJobs(t, context.Background(), opts, []string{srv.URL + tt.path})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			r := recs[0]
			if r.OK || r.Error == nil || r.Error.Kind != "redirect" {
				t.Fatalf("record ok %v, error %+v, want kind redirect", r.OK, r.Error)
			}
			if r.Status != tt.status {
				t.Errorf("status = %d, want %d", r.Status, tt.status)
			}
			if r.Attempts != 1 {
				t.Errorf("attempts = %d, want 1", r.Attempts)
			}
			if r.Proto != "HTTP/1.1" {
				t.Errorf("proto = %q, want HTTP/1.1", r.Proto)
			}
			wantFinal := ""
			if tt.finalPath != "" {
				wantFinal = srv.URL + tt.finalPath
			}
			if r.FinalURL != wantFinal {
				t.Errorf("final_url = %q, want %q", r.FinalURL, wantFinal)
			}
			if !strings.Contains(r.Error.Message, tt.message) {
				t.Errorf("message %q lacks %q", r.Error.Message, tt.message)
			}
			if tt.hidden != "" && strings.Contains(r.Error.Message, tt.hidden) {
				t.Errorf("message %q shows %q", r.Error.Message, tt.hidden)
			}
		})
	}
}

// TestRedirectTargetFailureRecords: when the target of a followed redirect
// fails before it answers, the record says that a redirect happened:
// final_url is the URL that failed, password masked, and the message names
// it.
func TestRedirectTargetFailureRecords(t *testing.T) {
	t.Parallel()
	dead := closedPort(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Reads the request and closes the connection without an answer.
	testnet.Serve(t, ln, func(c net.Conn) { c.Read(make([]byte, 4096)) })
	closes := ln.Addr().String()
	srv := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	tests := []struct {
		name, to, final string
		kind            string
	}{
		{name: "refused", to: "http://" + dead + "/echo", final: "http://" + dead + "/echo", kind: "connect"},
		{name: "refused, with a password", to: "http://user:pwsecret99@" + dead + "/x?y=1",
			final: "http://user:***@" + dead + "/x?y=1", kind: "connect"},
		{name: "closed", to: "http://" + closes + "/echo", final: "http://" + closes + "/echo", kind: "reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := transport.New(transport.Options{MaxRedirects: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			opts := Options{Limit: 1, PerHost: 1, Timeout: 5 * time.Second, Routes: []Route{{Client: c}}}
			recs, err := runJobs(t, context.Background(), opts, []string{srv.URL + "/r?" + url.Values{"to": {tt.to}}.Encode()})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			r := recs[0]
			if r.OK || r.Error == nil || r.Error.Kind != tt.kind {
				t.Fatalf("record ok %v, error %+v, want kind %s", r.OK, r.Error, tt.kind)
			}
			if r.FinalURL != tt.final {
				t.Errorf("final_url = %q, want %q", r.FinalURL, tt.final)
			}
			if want := "after a redirect to " + tt.final; !strings.Contains(r.Error.Message, want) {
				t.Errorf("message %q lacks %q", r.Error.Message, want)
			}
			if strings.Contains(r.Error.Message, "pwsecret99") || strings.Contains(r.FinalURL, "pwsecret99") {
				t.Errorf("record shows the password: %+v", r)
			}
		})
	}
}
