package runner

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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
