package target

import "sync/atomic"

// hostCounters holds one listener's counters. It is padded to its own cache
// lines so that hosts served on different cores do not contend.
type hostCounters struct {
	requests atomic.Int64
	conns    atomic.Int64
	inFlight atomic.Int64
	peak     atomic.Int64
	tooMany  atomic.Int64
	_        [128 - 5*8]byte
}

// HostStats are the counters of one host.
type HostStats struct {
	Addr         string `json:"addr"`
	Requests     int64  `json:"requests"`
	Conns        int64  `json:"conns"`
	InFlight     int64  `json:"in_flight"`
	PeakInFlight int64  `json:"peak_in_flight"`
	TooMany      int64  `json:"too_many"`
}

// Stats is a snapshot of the server's counters. Requests counts every
// request a handler saw; Conns counts accepted connections; TooMany counts
// 429 responses, whatever their cause. Totals are sums over Hosts except
// PeakInFlight, which is the peak of the total.
type Stats struct {
	Requests     int64       `json:"requests"`
	Conns        int64       `json:"conns"`
	InFlight     int64       `json:"in_flight"`
	PeakInFlight int64       `json:"peak_in_flight"`
	TooMany      int64       `json:"too_many"`
	Hosts        []HostStats `json:"hosts"`
}

// Stats returns a snapshot of the counters. Counters are read one by one, so
// under load the snapshot is not an atomic cut.
func (s *Server) Stats() Stats {
	st := Stats{
		InFlight:     s.inFlight.Load(),
		PeakInFlight: s.peak.Load(),
		Hosts:        make([]HostStats, len(s.hosts)),
	}
	for i := range s.hosts {
		c := &s.hosts[i]
		h := HostStats{
			Addr:         s.addrs[i],
			Requests:     c.requests.Load(),
			Conns:        c.conns.Load(),
			InFlight:     c.inFlight.Load(),
			PeakInFlight: c.peak.Load(),
			TooMany:      c.tooMany.Load(),
		}
		st.Hosts[i] = h
		st.Requests += h.Requests
		st.Conns += h.Conns
		st.TooMany += h.TooMany
	}
	return st
}

// ResetPeaks sets every peak in-flight count, per host and in total, to the
// current in-flight count, so a test can measure the peak of one phase.
func (s *Server) ResetPeaks() {
	for i := range s.hosts {
		c := &s.hosts[i]
		c.peak.Store(c.inFlight.Load())
	}
	s.peak.Store(s.inFlight.Load())
}

// raise lifts p to v if v is larger.
func raise(p *atomic.Int64, v int64) {
	for {
		old := p.Load()
		if v <= old || p.CompareAndSwap(old, v) {
			return
		}
	}
}

// leave ends a request's share of the server-wide in-flight count.
func (s *Server) leave() {
	if s.inFlight.Add(-1) == 0 && s.closing.Load() {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}
