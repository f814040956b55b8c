package runner

import (
	"context"
	"os"
)

// CountJobs returns how many jobs [ReadJobs] sends for the named inputs
// under shard: the lines that get a record, by the same rule. It opens each
// file anew, so that it can run beside the reader, and returns -1 when an
// input is stdin or not a regular file, or cannot be read to its end.
// Without a shard it only tells lines apart from blanks and comments; a
// shard needs each line's host, which costs a parse.
func CountJobs(ctx context.Context, names []string, shard Shard) int64 {
	var n int64
	for _, name := range names {
		if name == "-" {
			return -1
		}
		f, err := os.Open(name)
		if err != nil {
			return -1
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		err = readLines(Input{Name: name, R: f}, func(lineNo int64, text string, size int64) error {
			if shard.N <= 1 {
				if !skipped(text) {
					n++
				}
			} else if _, ok, _ := makeJob(name, lineNo, text, size, ReadOptions{Shard: shard}); ok {
				n++
			}
			return ctx.Err()
		})
		if err != nil {
			return -1
		}
	}
	return n
}
