package transport

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// addrSessions keeps the TLS sessions of one address dialled (host and
// port) apart from those of the host's other ports. crypto/tls keys a
// session by the server name alone, so servers on two ports of one host
// would take each other's place in the cache, and a connection to one
// would offer the other's ticket, which it cannot read.
type addrSessions struct {
	cache  tls.ClientSessionCache
	prefix string // the address and a space
}

func (s *addrSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return s.cache.Get(s.prefix + key)
}

func (s *addrSessions) Put(key string, cs *tls.ClientSessionState) {
	s.cache.Put(s.prefix+key, cs)
}

// connTLS returns the TLS configuration of a connection this package
// makes, or has net/http make, to addr (host:port): base's, with the host
// as the name to check (as net/http does) unless base names one, and the
// sessions kept for addr. With ca, the certificate is checked against ca
// (see caRoots.verify) for that name.
func connTLS(base *tls.Config, ca *caRoots, addr string) *tls.Config {
	conf := base.Clone()
	if conf.ServerName == "" {
		conf.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if conf.ClientSessionCache != nil {
		conf.ClientSessionCache = &addrSessions{cache: conf.ClientSessionCache, prefix: addr + " "}
	}
	if ca != nil {
		name := conf.ServerName
		conf.InsecureSkipVerify = true //nolint:gosec // VerifyConnection checks the chain and the name
		conf.VerifyConnection = func(cs tls.ConnectionState) error { return ca.verify(name, cs) }
	}
	return conf
}

// systemRoots loads the system's trusted roots; tests replace it.
var systemRoots = x509.SystemCertPool

// caRoots are the roots of a run with a CA file: the file's certificates,
// and the system's roots with them, loaded when a chain first needs them.
// Loading the system's roots reads every file of the system's certificate
// folder, which costs a run of a few URLs more than its requests.
type caRoots struct {
	certs []*x509.Certificate // the file's
	file  *x509.CertPool      // the file's certificates alone

	once  sync.Once
	union *x509.CertPool // the system's roots and the file's certificates
}

// readCA reads the CA file at path. Its errors do not repeat path.
func readCA(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, err
	}
	return data, nil
}

// parseCA returns the roots of a CA file's contents. Each CERTIFICATE
// block must decode and parse: x509.CertPool.AppendCertsFromPEM would
// skip one that does not, and every server it was meant for would fail
// as one of an unknown authority. Blocks of other types (a key) are
// skipped, as is text between blocks. Its errors do not name the file.
func parseCA(data []byte) (*caRoots, error) {
	r := &caRoots{file: x509.NewCertPool()}
	n := 0
	for rest := data; ; {
		block, typ, after := nextPEM(rest)
		if typ == "" {
			break
		}
		rest = after
		if typ != "CERTIFICATE" {
			continue
		}
		n++
		if block == nil {
			return nil, fmt.Errorf("certificate %d does not parse: not valid PEM", n)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %s", n, strings.TrimPrefix(err.Error(), "x509: "))
		}
		r.certs = append(r.certs, cert)
		r.file.AddCert(cert)
	}
	if n == 0 {
		return nil, errors.New("holds no PEM certificate")
	}
	return r, nil
}

// nextPEM finds the next line of data that begins a PEM block and returns
// the block's type as that line names it ("" when there is none), the
// block decoded (nil when it does not decode) and the data after it.
// pem.Decode alone would pass over a block that does not decode and
// return the next one.
func nextPEM(data []byte) (block *pem.Block, typ string, rest []byte) {
	const begin = "-----BEGIN "
	i := 0
	if !bytes.HasPrefix(data, []byte(begin)) {
		i = bytes.Index(data, []byte("\n"+begin))
		if i < 0 {
			return nil, "", nil
		}
		i++
	}
	data = data[i:]
	line, _, _ := bytes.Cut(data, []byte("\n"))
	typ, _, _ = strings.Cut(strings.TrimPrefix(string(line), begin), "-----")
	// The block ends with the line after the first END line.
	end := len(data)
	if j := bytes.Index(data, []byte("\n-----END ")); j >= 0 {
		if k := bytes.IndexByte(data[j+1:], '\n'); k >= 0 {
			end = j + 1 + k + 1
		}
	}
	block, _ = pem.Decode(data[:end])
	if typ == "" {
		typ = "?"
	}
	return block, typ, data[end:]
}

// all returns the system's roots with the file's certificates added,
// loading them on the first call.
func (r *caRoots) all() *x509.CertPool {
	r.once.Do(func() {
		pool, err := systemRoots()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, c := range r.certs {
			pool.AddCert(c)
		}
		r.union = pool
	})
	return r.union
}

// verify checks the server's chain in cs, and that it is for name, as
// crypto/tls checks it against roots of the system's and the file's
// certificates: against the file's alone first, which needs no system
// root loaded, then against both. It fails with the error crypto/tls
// gives, so that it reads and is classified as ever. It is called for
// resumed sessions too, with the certificates of the session.
func (r *caRoots) verify(name string, cs tls.ConnectionState) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return &tls.CertificateVerificationError{Err: errors.New("the server sent no certificate")}
	}
	opts := x509.VerifyOptions{
		Roots:         r.file,
		CurrentTime:   time.Now(),
		DNSName:       name,
		Intermediates: x509.NewCertPool(),
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := certs[0].Verify(opts); err == nil {
		return nil
	}
	opts.Roots = r.all()
	if _, err := certs[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	return nil
}

// errNoServerName refuses a connection whose configuration does not say
// which name its certificate must be for.
var errNoServerName = errors.New("no server name to check the certificate against")

// sessionCacheSize is how many TLS sessions a client keeps for resumption:
// one a host, for the hosts met most recently.
const sessionCacheSize = 512

// tlsConfig returns the TLS configuration of the client's connections
// and, when certificates are checked against a CA file without the
// system's roots loaded up front, those roots (see connTLS); tunnels says
// that net/http may make TLS connections itself, through CONNECT tunnels.
func tlsConfig(opts Options, tunnels bool) (*tls.Config, *caRoots, error) {
	conf := &tls.Config{InsecureSkipVerify: opts.Insecure} //nolint:gosec // explicit opt-in flag
	// A new connection to a host met before (one a keep-alive closed, a
	// rotation opened) resumes its TLS session: one round trip and no
	// certificate checks instead of a full handshake.
	conf.ClientSessionCache = opts.Shared.tls
	if opts.CACertFile == "" && opts.CACertPEM == nil {
		return conf, nil, nil
	}
	ca, err := opts.Shared.caFor(opts.CACertFile, opts.CACertPEM)
	if err != nil {
		return nil, nil, &CAFileError{File: opts.CACertFile, Err: err}
	}
	if opts.Insecure {
		return conf, nil, nil
	}
	if tunnels {
		// net/http checks a tunnelled target's certificate with this
		// configuration, and tells VerifyConnection no name to check
		// when the target's host is an IP address: crypto/tls checks it,
		// against both pools.
		conf.RootCAs = ca.all()
		return conf, nil, nil
	}
	// Each connection is given its own check (connTLS), which knows the
	// name; a connection made from conf itself is checked by the name it
	// sent, and refused when it sent none.
	conf.InsecureSkipVerify = true
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.ServerName == "" {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: errNoServerName}
		}
		return ca.verify(cs.ServerName, cs)
	}
	return conf, ca, nil
}

// CAFileError is a CA file (Options.CACertFile) that could not be used.
type CAFileError struct {
	File string
	Err  error
}

func (e *CAFileError) Error() string { return "CA file " + e.File + ": " + e.Err.Error() }

func (e *CAFileError) Unwrap() error { return e.Err }

// ReadCAFile reads the PEM file at path once and checks it as a client
// given it would use it: each CERTIFICATE block must parse, and there must
// be one. It returns what it read, for Options.CACertPEM. Its errors do
// not repeat path: "no such file or directory", "holds no PEM
// certificate", "certificate 2 does not parse: ...".
func ReadCAFile(path string) ([]byte, error) {
	data, err := readCA(path)
	if err != nil {
		return nil, err
	}
	if _, err := parseCA(data); err != nil {
		return nil, err
	}
	return data, nil
}
