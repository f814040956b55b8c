package testnet

import (
	"io"
	"net"

	"golang.org/x/net/http2"
)

// H2Framer opens the server side of an HTTP/2 connection on c: it reads the
// client's preface and sends the server's SETTINGS, with settings in it. It
// returns nil when the
// client did not open with the preface or the write failed.
func H2Framer(c net.Conn, settings ...http2.Setting) *http2.Framer {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return nil
	}
	fr := http2.NewFramer(c, c)
	if fr.WriteSettings(settings...) != nil {
		return nil
	}
	return fr
}
