package runner

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/testnet"
)

// TestTargetEchoOfUserInfoMasked: a target that quotes back the password
// of the URL's user info, or the Basic token net/http made of it for
// Authorization, finds them masked in the record's message, though the
// run's list of secrets does not hold them.
func TestTargetEchoOfUserInfoMasked(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.Serve(t, ln, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		// A malformed status code, which net/http quotes.
		code := strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
		if _, p, ok := req.BasicAuth(); ok && req.URL.Path == "/pw" {
			code = p
		}
		c.Write([]byte("HTTP/1.1 " + code + " OK\r\n\r\n"))
	})
	const pass = "Tgt-pass-xyz"
	token := base64.StdEncoding.EncodeToString([]byte("tu:" + pass))
	base := "http://tu:" + pass + "@" + ln.Addr().String()
	recs, err := runJobs(t, context.Background(), Options{Limit: 2, PerHost: 2}, []string{base + "/pw", base + "/token"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for _, r := range recs {
		if r.Error == nil || !strings.Contains(r.Error.Message, `malformed HTTP status code "***"`) {
			t.Errorf("%s: error %+v, want the quoted code masked", r.URL, r.Error)
			continue
		}
		for _, s := range []string{pass, token} {
			if strings.Contains(r.Error.Message, s) {
				t.Errorf("%s: message %q shows %q", r.URL, r.Error.Message, s)
			}
		}
	}
}
