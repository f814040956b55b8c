package progress

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fetchctl/fetchctl/internal/target"
)

func TestFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		ok, failed, total int64
		elapsed           time.Duration
		width             int
		want              []string // substrings, in order
		not               []string
	}{
		{name: "first frame", ok: 0, failed: 0, total: 3000, elapsed: 50 * time.Millisecond, width: 80,
			want: []string{"ok 0 failed 0", "0/3000", "0%"}, not: []string{"/s", "elapsed", "left", "/hr"}},
		{name: "running, 80 columns", ok: 399, failed: 40, total: 3000, elapsed: 2 * time.Second, width: 80,
			want: []string{"ok 399 failed 40", "439/3000", "█", "14%", "220/s", "elapsed 2s", "left 12s"}},
		{name: "running, 40 columns", ok: 399, failed: 40, total: 3000, elapsed: 2 * time.Second, width: 40,
			want: []string{"ok 399 failed 40", "439/3000"}, not: []string{"█"}},
		{name: "unknown total", ok: 10, failed: 2, total: -1, elapsed: 3 * time.Second, width: 80,
			want: []string{"ok 10 failed 2", "12", "4.0/s", "elapsed 3s"}, not: []string{"/-", "left", "%"}},
		{name: "slow", ok: 1, failed: 0, total: 100, elapsed: 90 * time.Second, width: 120,
			want: []string{"0.0/s", "elapsed 1m30s", "left 2h28m"}, not: []string{"/hr"}},
		{name: "very narrow", ok: 123456, failed: 7890, total: 1000000, elapsed: time.Minute, width: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := frame(tt.ok, tt.failed, tt.total, tt.elapsed, tt.width)
			if n := utf8.RuneCountInString(got); n >= tt.width {
				t.Errorf("frame %q is %d columns, want fewer than %d", got, n, tt.width)
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("frame %q lacks %q (in order)", got, w)
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("frame %q holds %q", got, w)
				}
			}
		})
	}
}

// TestProgressLines checks that a line of the run's own clears the bar, is
// written whole on a line of its own, and that the bar comes back after it;
// Finish leaves no frame behind.
func TestProgressLines(t *testing.T) {
	t.Parallel()
	var b target.LockedBuffer
	p := &Bar{w: &b, width: func() int { return 60 }, now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	p.total.Store(10)
	p.start = p.now()
	p.draw()
	go p.loop()
	p.Tick(true)
	p.Println("fetchctl: fail http://x/: status 404")
	p.Finish()
	out := b.String()
	want := "\r\033[K" + "fetchctl: fail http://x/: status 404\n"
	if !strings.Contains(out, want) {
		t.Errorf("output %q lacks the cleared line %q", out, want)
	}
	after := out[strings.Index(out, want)+len(want):]
	if !strings.HasPrefix(after, "\rok 1 failed 0") {
		t.Errorf("after the line: %q, want the bar redrawn", after)
	}
	if !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("output ends %q, want the bar cleared", out[max(0, len(out)-20):])
	}
}
