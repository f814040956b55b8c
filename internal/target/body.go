package target

import "io"

// pattern is the repeating unit of every body; chunk holds whole repeats so
// that a streamed body continues the pattern across chunks.
const pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_\n"

var chunk = fill(make([]byte, 512*len(pattern)))

// fill writes the body pattern into b and returns it.
func fill(b []byte) []byte {
	for i := 0; i < len(b); i += len(pattern) {
		copy(b[i:], pattern)
	}
	return b
}

// Body returns the n bytes the server sends as a body of size n, on every
// path that sends a sized body (default, /slow, /stall, /big, /drip, ...),
// so a test can compare bodies or hashes.
func Body(n int) []byte { return fill(make([]byte, n)) }

// writeBody streams n pattern bytes to w.
func writeBody(w io.Writer, n int64) error {
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
