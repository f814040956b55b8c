// Package progress draws the run's progress bar on a terminal and lets the
// run's own lines through around it.
package progress

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bar draws a one-line progress bar on stderr and lets the run's own
// stderr lines (-v, warnings) through without mixing with it: a line clears
// the bar, is written whole, and the bar is drawn again below it. Frames are
// drawn on a ticker, never wider than the terminal, so that nothing wraps and
// nothing of a frame is left in the scrollback; the bar is cleared when the
// run ends. The zero value draws nothing and passes lines straight through.
// It is safe for concurrent use.
type Bar struct {
	w     io.Writer
	total atomic.Int64 // -1 until known
	width func() int
	start time.Time
	now   func() time.Time

	ok, failed atomic.Int64

	mu    sync.Mutex
	shown bool // a frame is on the screen
	stop  chan struct{}
	done  chan struct{}
}

// frameEvery is how often the bar is drawn.
const frameEvery = 100 * time.Millisecond

// New starts drawing a bar of total URLs (-1 until known) on w, a terminal
// width columns wide.
func New(w io.Writer, total int64, width func() int) *Bar {
	p := &Bar{
		w:     w,
		width: width,
		now:   time.Now,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	p.total.Store(total)
	p.start = p.now()
	p.draw()
	go p.loop()
	return p
}

// SetTotal sets the URLs the run will finish, -1 for unknown.
func (p *Bar) SetTotal(n int64) { p.total.Store(n) }

// Plain is a Bar that draws nothing and passes lines straight to w.
func Plain(w io.Writer) *Bar { return &Bar{w: w} }

// Drawing reports whether the bar is drawn.
func (p *Bar) Drawing() bool { return p.stop != nil }

func (p *Bar) loop() {
	defer close(p.done)
	t := time.NewTicker(frameEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.draw()
		}
	}
}

// Tick counts one finished URL.
func (p *Bar) Tick(ok bool) {
	if ok {
		p.ok.Add(1)
	} else {
		p.failed.Add(1)
	}
}

// Println writes one line of the run's own to stderr, around the bar.
func (p *Bar) Println(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		io.WriteString(p.w, "\r\033[K")
	}
	io.WriteString(p.w, line+"\n")
	if p.shown {
		p.drawLocked()
	}
}

// Finish stops drawing and clears the bar, and with it whatever the terminal
// echoed on its line (the ^C of an interrupt).
func (p *Bar) Finish() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		io.WriteString(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *Bar) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawLocked()
}

func (p *Bar) drawLocked() {
	f := frame(p.ok.Load(), p.failed.Load(), p.total.Load(), p.now().Sub(p.start), p.width())
	io.WriteString(p.w, "\r"+f+"\033[K")
	p.shown = true
}

// frame is one line of the bar, at most width-1 columns so that the
// terminal never wraps it:
//
//	ok 399 failed 40 · 439/3000 ██████░░░░░░ 15% · 320/s · elapsed 1s · left 8s
//
// The rate and the time left appear once there is a second of history; with
// no known total the count stands alone. Narrow terminals lose the bar, then
// the time left, then the elapsed time.
func frame(ok, failed, total int64, elapsed time.Duration, width int) string {
	done := ok + failed
	counts := fmt.Sprintf("ok %d failed %d", ok, failed)
	count := strconv.FormatInt(done, 10)
	pct := ""
	if total > 0 {
		count += "/" + strconv.FormatInt(total, 10)
		pct = fmt.Sprintf(" %d%%", min(100, done*100/total))
	}
	var rate, elapsedS, left string
	if secs := elapsed.Seconds(); secs >= 1 {
		r := float64(done) / secs
		rate = fmt.Sprintf("%.0f/s", r)
		if r < 10 {
			rate = fmt.Sprintf("%.1f/s", r)
		}
		elapsedS = "elapsed " + formatDur(elapsed)
		if total > 0 && done > 0 && done < total {
			left = "left " + formatDur(time.Duration(float64(total-done)/r*float64(time.Second)))
		}
	}
	limit := width - 1
	for drop := 0; drop < 4; drop++ {
		parts := []string{counts, count}
		withBar := drop == 0 && total > 0
		if rate != "" {
			parts = append(parts, rate)
		}
		if elapsedS != "" && drop < 3 {
			parts = append(parts, elapsedS)
		}
		if left != "" && drop < 2 {
			parts = append(parts, left)
		}
		text := strings.Join(parts, " · ")
		if withBar {
			room := limit - runeLen(text) - len(pct) - 2
			if room >= 10 {
				n := min(room, 30)
				fill := int(int64(n) * min(done, total) / total)
				bar := strings.Repeat("█", fill) + strings.Repeat("░", n-fill)
				head := counts + " · " + count + " " + bar + pct
				return strings.Join(append([]string{head}, parts[2:]...), " · ")
			}
			continue
		}
		if total > 0 {
			parts[1] += pct
			text = strings.Join(parts, " · ")
		}
		if runeLen(text) <= limit || drop == 3 {
			return cut(text, limit)
		}
	}
	return ""
}

func runeLen(s string) int { return len([]rune(s)) }

func cut(s string, n int) string {
	if n < 0 {
		n = 0
	}
	r := []rune(s)
	if len(r) > n {
		r = r[:n]
	}
	return string(r)
}

// formatDur is a duration in whole seconds, minutes and hours: 8s, 2m05s, 1h02m.
func formatDur(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
}
