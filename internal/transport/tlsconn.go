package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
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
	pem  []byte
	file *x509.CertPool // the file's certificates alone

	once  sync.Once
	union *x509.CertPool // the system's roots and the file's certificates
}

// readCA reads the CA file at path. Its errors do not repeat path.
func readCA(path string) (*caRoots, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("holds no PEM certificate")
	}
	return &caRoots{pem: data, file: pool}, nil
}

// all returns the system's roots with the file's certificates added,
// loading them on the first call.
func (r *caRoots) all() *x509.CertPool {
	r.once.Do(func() {
		pool, err := systemRoots()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(r.pem)
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
