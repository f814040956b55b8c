package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/fetchctl/fetchctl/internal/runner"
)

// progress draws the progress bar on stderr; the zero value draws nothing.
type progress struct {
	bar  *progressbar.ProgressBar
	last time.Time
}

// showProgress applies --progress: auto shows the bar only when stderr is a
// terminal and CI is unset.
func showProgress(d *deps, mode string) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	return d.io.IsStderrTTY() && d.getenv("CI") == ""
}

func newProgress(d *deps, cfg *Config, inputs []runner.Input, skip *keptRecords) *progress {
	if !showProgress(d, cfg.Progress) {
		return &progress{}
	}
	total := int64(-1)
	if cfg.Shard.N <= 1 {
		total = countURLs(inputs)
		if total >= 0 && skip != nil {
			total -= skip.count
		}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(d.io.ErrOut),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("url"),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetDescription("fetching"),
	}
	if total < 0 {
		opts = append(opts, progressbar.OptionSpinnerType(14))
	}
	return &progress{bar: progressbar.NewOptions64(total, opts...)}
}

func (p *progress) tick(ok, failed int64) {
	if p.bar == nil {
		return
	}
	if now := time.Now(); now.Sub(p.last) > 100*time.Millisecond {
		p.last = now
		p.bar.Describe(fmt.Sprintf("ok %d failed %d", ok, failed))
	}
	_ = p.bar.Add64(1)
}

func (p *progress) finish() {
	if p.bar == nil {
		return
	}
	_ = p.bar.Finish()
}

// countURLs counts the lines that are neither blank nor comments when every
// input is a regular file, rewinding each; -1 when the total is unknown.
func countURLs(inputs []runner.Input) int64 {
	var n int64
	for _, in := range inputs {
		f, ok := in.R.(*os.File)
		if !ok || in.Name == "-" {
			return -1
		}
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			return -1
		}
		br := bufio.NewReaderSize(f, 256<<10)
		atStart := true
		counted := false
		for {
			chunk, err := br.ReadSlice('\n')
			for _, c := range chunk {
				if atStart && (c == ' ' || c == '\t' || c == '\r') {
					continue
				}
				if atStart && c != '\n' {
					atStart = false
					if c != '#' {
						counted = true
					}
				}
			}
			if bytes.HasSuffix(chunk, []byte{'\n'}) || (err == io.EOF && len(chunk) > 0) {
				if counted {
					n++
				}
				atStart, counted = true, false
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				break
			}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return -1
		}
	}
	return n
}
