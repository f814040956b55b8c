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

// ReadH2Frame reads the next frame the client sent on fr that a test server
// has to look at: it acknowledges SETTINGS and answers PING itself, as
// every HTTP/2 server must, and reads on.
func ReadH2Frame(fr *http2.Framer) (http2.Frame, error) {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					return nil, err
				}
			}
			continue
		case *http2.PingFrame:
			if !f.IsAck() {
				if err := fr.WritePing(true, f.Data); err != nil {
					return nil, err
				}
			}
			continue
		}
		return f, nil
	}
}
