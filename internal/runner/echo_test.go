package runner

import (
	"context"
	"encoding/base64"
	"errors"
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
	lnAddr := testnet.ServeRequest(t, func(c net.Conn, req *http.Request) {
		// A malformed status code, which net/http quotes.
		code := strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
		if _, p, ok := req.BasicAuth(); ok && req.URL.Path == "/pw" {
			code = p
		}
		c.Write([]byte("HTTP/1.1 " + code + " OK\r\n\r\n"))
	})
	const pass = "Tgt-pass-xyz"
	token := base64.StdEncoding.EncodeToString([]byte("tu:" + pass))
	base := "http://tu:" + pass + "@" + lnAddr.String()
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

// sentDoer answers every request as if a redirect had led to a URL that
// quotes the credential it says it sent, and, for /fail, fails as a too
// long chain of redirects does.
type sentDoer struct{ secret string }

func (d sentDoer) Do(req *http.Request) (*http.Response, error) {
	resp, _, err := d.DoSent(req)
	return resp, err
}

func (d sentDoer) DoSent(req *http.Request) (*http.Response, []string, error) {
	u := *req.URL
	u.Path = "/denied"
	u.RawQuery = "who=" + d.secret
	next := req.Clone(req.Context())
	next.URL = &u
	resp := &http.Response{StatusCode: 302, Proto: "HTTP/1.1", ProtoMajor: 1, Header: http.Header{}, Body: http.NoBody, Request: next}
	if req.URL.Path == "/fail" {
		return resp, []string{d.secret}, errors.New("stopped after 10 redirects")
	}
	return resp, []string{d.secret}, nil
}

// TestFinalURLMasksWhatTheRouteSent: a record's final_url, a Location as
// the server wrote it, reads what the attempt's route sent (see
// [SentDoer]) as ***, as the message does, whether the attempt ended with
// an answer or with the redirect's failure.
func TestFinalURLMasksWhatTheRouteSent(t *testing.T) {
	t.Parallel()
	const pass = "Filled-pw-xyz"
	opts := Options{Limit: 1, PerHost: 1, Routes: []Route{{Client: sentDoer{secret: pass}, Proxy: "http://u:***@gw:1"}}}
	recs, err := runJobs(t, context.Background(), opts, []string{"http://a.example/ok", "http://a.example/fail"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for _, r := range recs {
		if r.FinalURL != "http://a.example/denied?who=***" {
			t.Errorf("%s: final_url %q, want the quoted password masked", r.URL, r.FinalURL)
		}
		if r.Error != nil && strings.Contains(r.Error.Message, pass) {
			t.Errorf("%s: message %q shows the password", r.URL, r.Error.Message)
		}
	}
}
