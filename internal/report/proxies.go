package report

// attemptsOf calls fn with each attempt of r: its history entries, or r
// itself as its one attempt. index counts from 0.
func attemptsOf(r *Record, fn func(index int, a Attempt, kind string)) {
	if len(r.History) > 0 {
		for i, a := range r.History {
			fn(i, a, a.Error)
		}
		return
	}
	kind := ""
	if r.Error != nil {
		kind = r.Error.Kind
	}
	fn(r.Attempts-1, Attempt{Status: r.Status, Proxy: r.Proxy, Blocked: r.Blocked, BytesOut: r.BytesOut, BytesIn: r.BytesIn}, kind)
}

// blocks counts the attempts of r that the target blocked.
func blocks(r *Record) int64 {
	var n int64
	attemptsOf(r, func(_ int, a Attempt, _ string) {
		if a.Blocked {
			n++
		}
	})
	return n
}

// addAttempts counts each attempt of r in the group of the proxy that
// carried it, failed ones included, so that a proxy whose every attempt
// failed (and whose URLs went on through others) still shows what it cost;
// and the bytes on the wire in the run's totals.
func (s *Summary) addAttempts(r *Record) {
	if r.Proxy == "" && len(r.History) == 0 {
		return
	}
	attemptsOf(r, func(i int, a Attempt, kind string) {
		s.wireOut += a.BytesOut
		s.wireIn += a.BytesIn
		if i > 0 {
			s.retryBytes += a.BytesOut + a.BytesIn
		}
		if a.Proxy == "" {
			return
		}
		s.keyBuf = append(s.keyBuf[:0], a.Proxy...)
		g := s.proxies.get(s.keyBuf)
		g.attempts++
		if i > 0 {
			g.retries++
		}
		if a.Blocked {
			g.blocks++
		}
		if kind != "" {
			g.failures[kindIndex(kind)]++
		}
		g.bytesOut += a.BytesOut
		g.bytesIn += a.BytesIn
		s.proxies.down(g.index)
	})
}

// AddUnrecorded counts the bytes on the wire of an attempt through a proxy
// whose URL got no record (the run stopped while it was under way, or
// before the URL's next attempt), or those a dial spent after its attempt
// ended: in the totals (retry_bytes too when it was a retry) and in its
// proxy's bytes, not in attempts or any count of records.
func (s *Summary) AddUnrecorded(a Attempt, retry bool) {
	s.wireOut += a.BytesOut
	s.wireIn += a.BytesIn
	if retry {
		s.retryBytes += a.BytesOut + a.BytesIn
	}
	if a.Proxy == "" {
		return
	}
	s.keyBuf = append(s.keyBuf[:0], a.Proxy...)
	g := s.proxies.get(s.keyBuf)
	g.bytesOut += a.BytesOut
	g.bytesIn += a.BytesIn
	s.proxies.down(g.index)
}
