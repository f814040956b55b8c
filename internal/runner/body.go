package runner

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fetchctl/fetchctl/internal/report"
)

// blockHead is how much of a body --block-pattern is matched against.
const blockHead = 64 << 10

// A worker reads bodies through a buffer of bodyBufStart bytes, which
// grows to bodyBufMax once a body fills it: a run of small bodies does not
// hold 32 KiB per worker.
const (
	bodyBufStart = 4 << 10
	bodyBufMax   = 32 << 10
)

// readBody reads at most MaxBody bytes into the hash and the body file, and
// with keepHead, the first blockHead bytes into ws.head.
func (d *dispatcher) readBody(ws *workerState, resp *http.Response, t *task, res *result, keepHead bool) error {
	ws.head = ws.head[:0]
	var src io.Reader = resp.Body
	enc := resp.Header.Get("Content-Encoding")
	gunzipped := false
	switch {
	case enc == "" || strings.EqualFold(enc, "identity"):
	case d.opts.gunzip && strings.EqualFold(enc, "gzip"):
		ws.raw = endReader{r: resp.Body}
		defer func() { ws.raw.r = nil }()
		if ws.rawBuf == nil {
			ws.rawBuf = bufio.NewReader(&ws.raw)
		} else {
			ws.rawBuf.Reset(&ws.raw)
		}
		gz, err := ws.gunzip(ws.rawBuf)
		switch {
		case err == io.EOF:
			// No body at all, as for a 204 or a 304.
			src = http.NoBody
		case err != nil:
			return ws.raw.decodeError(err, 0)
		default:
			ws.members = gzipMembers{gz: gz, br: ws.rawBuf}
			src = &ws.members
			gunzipped = true
		}
	default:
		// Kept as received: the record says so, since its bytes and hash
		// are not of the decoded body.
		res.contentEncoding = enc
	}
	var (
		w    io.Writer = io.Discard
		sum  hash.Hash
		file bodyFile
	)
	var writers []io.Writer
	if d.opts.Hash {
		sum = sha256.New()
		writers = append(writers, sum)
	}
	if keepHead {
		writers = append(writers, headWriter{ws})
	}
	if d.opts.SaveDir != "" {
		// The body goes to a new file of its own, renamed into place once
		// whole: a link or file planted under the final name is replaced,
		// never written through, and no partial body is ever left there.
		f, err := d.opts.saveFile(d.opts.SaveDir, tempPattern)
		if err != nil {
			return d.saveError(err)
		}
		file = f
		writers = append(writers, savingWriter{f})
	}
	switch len(writers) {
	case 0:
	case 1:
		w = writers[0]
	default:
		w = io.MultiWriter(writers...)
	}
	if d.opts.MaxBody > 0 {
		ws.body = io.LimitedReader{R: src, N: d.opts.MaxBody + 1}
		src = &ws.body
	}
	ws.out.Writer = w
	n, err := io.CopyBuffer(&ws.out, src, ws.buf)
	if n >= int64(len(ws.buf)) && len(ws.buf) < bodyBufMax {
		ws.buf = make([]byte, bodyBufMax)
	}
	ws.body.R, ws.out.Writer = nil, nil
	if gunzipped && err != nil {
		err = ws.raw.decodeError(err, n)
	}
	res.bytes = n
	tooLarge := err == nil && d.opts.MaxBody > 0 && n > d.opts.MaxBody
	if tooLarge {
		res.bytes = d.opts.MaxBody
	}
	if file != nil {
		if ferr := d.keepBody(file, t, res, err == nil, tooLarge); ferr != nil {
			return ferr
		}
	}
	if tooLarge {
		return &bodyTooLargeError{limit: d.opts.MaxBody, text: d.opts.MaxBodyText}
	}
	var se *SaveError
	if errors.As(err, &se) {
		return d.saveError(err)
	}
	if sum != nil && err == nil {
		res.sha256 = hex.EncodeToString(sum.Sum(nil))
	}
	return err
}

// headWriter keeps the first blockHead bytes written in ws.head.
type headWriter struct{ ws *workerState }

func (h headWriter) Write(p []byte) (int, error) {
	if room := blockHead - len(h.ws.head); room > 0 {
		h.ws.head = append(h.ws.head, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// keepBody closes the temporary body file and renames it into place when the
// body was read whole (cut to --max-body when it was larger, so that the file
// holds the record's bytes), or removes it. It returns a [SaveError] when the
// file could not be kept.
func (d *dispatcher) keepBody(f bodyFile, t *task, res *result, whole, tooLarge bool) error {
	tmp := f.Name()
	var err error
	if whole && tooLarge {
		err = f.Truncate(d.opts.MaxBody)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && whole {
		final := filepath.Join(d.opts.SaveDir, bodyFileName(t.job, d.opts.MultiInput))
		if err = os.Rename(tmp, final); err == nil {
			res.bodyFile = final
			return nil
		}
	}
	os.Remove(tmp)
	if err != nil {
		return d.saveError(err)
	}
	return nil
}

// bodyFile is where a body is saved; *os.File is one.
type bodyFile interface {
	io.Writer
	Name() string
	Truncate(size int64) error
	Close() error
}

// createTemp creates a new file in dir named by pattern, its "*" replaced
// by a random string, as os.CreateTemp does, but with the mode os.Create
// gives (0666 less the umask) rather than 0600: a saved body is as readable
// as any file the user makes. O_EXCL keeps it from taking over a file or
// link that is already there.
func createTemp(dir, pattern string) (bodyFile, error) {
	prefix, suffix, _ := strings.Cut(pattern, "*")
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36)+suffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		switch {
		case err == nil:
			return f, nil
		case os.IsExist(err) && try < 100:
			continue
		default:
			return nil, err
		}
	}
}

// savingWriter marks the errors of writing a body file as the run's own, so
// that a full disk is not taken for a failure of the target.
type savingWriter struct{ f bodyFile }

func (s savingWriter) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	if err != nil {
		err = &SaveError{Err: err}
	}
	return n, err
}

// SaveError is a body that could not be written under --save-bodies (a full
// disk, say). It ends the run: the URL gets no record, so that --resume
// fetches it again.
type SaveError struct {
	Dir string // the --save-bodies folder
	Err error
}

func (e *SaveError) Error() string {
	return fmt.Sprintf("cannot save bodies in %s: %v", e.Dir, e.Err)
}

func (e *SaveError) Unwrap() error { return e.Err }

func (d *dispatcher) saveError(err error) error {
	var se *SaveError
	if errors.As(err, &se) {
		err = se.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		// The folder is named once; the file names say nothing more.
		err = pe.Err
	}
	return &SaveError{Dir: d.opts.SaveDir, Err: err}
}

// gunzip returns the worker's gzip decoder reading the first member of
// body, made or reset. body, being a byte reader, is read no further than
// the member's end.
func (ws *workerState) gunzip(body *bufio.Reader) (*gzip.Reader, error) {
	if ws.gz == nil {
		gz, err := gzip.NewReader(body)
		if err != nil {
			return nil, err
		}
		gz.Multistream(false)
		ws.gz = gz
		return gz, nil
	}
	err := ws.gz.Reset(body)
	ws.gz.Multistream(false)
	return ws.gz, err
}

// gzipMembers decodes the members of a gzip body one after another, as a
// multistream gzip.Reader does (RFC 1952 allows several in a row), but
// tells bytes after the last member that start no member apart from a
// stream cut short: they are a [*trailingError].
type gzipMembers struct {
	gz *gzip.Reader // reading the current member from br
	br *bufio.Reader
}

// maxTrailing is how many bytes after a gzip stream are read to count
// them; a body with more is not read to its end.
const maxTrailing = 64 << 10

func (m *gzipMembers) Read(p []byte) (int, error) {
	for {
		n, err := m.gz.Read(p)
		if err != io.EOF {
			return n, err
		}
		// A member ended whole: the body ends too, or another member
		// starts, or it holds bytes that are none.
		next, err := m.br.Peek(2)
		switch {
		case err != nil && err != io.EOF:
			return n, err
		case len(next) == 0:
			return n, io.EOF
		case len(next) == 2 && next[0] == 0x1f && next[1] == 0x8b:
			if err := m.gz.Reset(m.br); err != nil {
				return n, err
			}
			m.gz.Multistream(false)
			if n > 0 {
				return n, nil
			}
		default:
			after, err := io.Copy(io.Discard, io.LimitReader(m.br, maxTrailing+1))
			if err != nil {
				return n, err
			}
			return n, &trailingError{after: after}
		}
	}
}

// endReader reads a compressed body and notes whether it ended as it
// should (io.EOF: all of its Content-Length, its last chunk, or the end of
// the connection that delimits it). The decoder says "unexpected EOF" both
// when its stream is cut short inside a body that ended so and when the
// connection closed before the body's end; only the second is a reset.
type endReader struct {
	r     io.Reader
	ended bool
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.ended = true
	}
	return n, err
}

// decodeError is err, from decoding the body, as a [truncatedError] when the
// compressed stream stopped early inside a body that arrived whole, and
// with the decoded bytes as a [trailingError].
func (e *endReader) decodeError(err error, decoded int64) error {
	var te *trailingError
	if errors.As(err, &te) {
		te.decoded = decoded
		return te
	}
	if e.ended && errors.Is(err, io.ErrUnexpectedEOF) {
		return &truncatedError{decoded: decoded}
	}
	return err
}

// truncatedError is a gzip body that arrived whole but whose compressed
// stream ends before its end: it does not decode, as a corrupt one does not.
type truncatedError struct{ decoded int64 }

func (e *truncatedError) Error() string {
	return fmt.Sprintf("compressed body ended early: the gzip stream stops after %d decoded bytes", e.decoded)
}

func (e *truncatedError) ErrorKind() string { return report.KindOther }

// trailingError is a gzip body whose gzip stream decodes whole but is
// followed by bytes that start no gzip member. curl refuses such a body;
// it does not decode, as a corrupt one does not.
type trailingError struct {
	after   int64 // bytes after the stream, maxTrailing+1 for more
	decoded int64
}

func (e *trailingError) Error() string {
	bytes := "bytes"
	switch {
	case e.after > maxTrailing:
		return fmt.Sprintf("compressed body has more than %d bytes after the end of its gzip stream (%d bytes decoded)", maxTrailing, e.decoded)
	case e.after == 1:
		bytes = "byte"
	}
	return fmt.Sprintf("compressed body has %d %s after the end of its gzip stream (%d bytes decoded)", e.after, bytes, e.decoded)
}

func (e *trailingError) ErrorKind() string { return report.KindOther }

// onlyWriter hides io.ReaderFrom so that CopyBuffer uses the worker's buffer.
type onlyWriter struct{ io.Writer }

// bodyFileName is "<line>.body", or with several inputs
// "<N>-<input>-<line>.body": N, the input's position among the inputs (from
// 1) or the number a resumed run keeps for it (see [NumberBodies]), keeps
// two inputs of one base name, or one named twice, apart, and its base
// name, made safe for a file name, says which it is.
func bodyFileName(j Job, multi bool) string {
	name := strconv.FormatInt(j.Line, 10) + ".body"
	if !multi {
		return name
	}
	return strconv.Itoa(j.index) + "-" + bodyInputName(j.Input) + "-" + name
}

// bodyInputName is an input's base name as body file names show it.
func bodyInputName(input string) string {
	in := filepath.Base(input)
	if in == "-" {
		in = "stdin"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 {
			return '_'
		}
		return r
	}, in)
}

// BodyNumber returns the N of bodyFile, the body_file of a record of
// input's line when several inputs were read: ok is false when the file's
// name is not "<N>-<input>-<line>.body" for them.
func BodyNumber(bodyFile, input string, line int64) (n int, ok bool) {
	name := filepath.Base(bodyFile)
	rest, ok := strings.CutSuffix(name, "-"+bodyInputName(input)+"-"+strconv.FormatInt(line, 10)+".body")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 || rest != strconv.Itoa(n) {
		return 0, false
	}
	return n, true
}

// NumberBodies gives each input whose BodyNo is 0 a number of its own for
// its body file names: its position among the inputs, from 1, or, when an
// input already has that number (one a resumed run kept from its records),
// the first number none has. The bodies of two inputs then never share a
// name, whatever the order the inputs come in.
func NumberBodies(inputs []Input) {
	taken := make(map[int]bool, len(inputs))
	for _, in := range inputs {
		if in.BodyNo > 0 {
			taken[in.BodyNo] = true
		}
	}
	for i := range inputs {
		if inputs[i].BodyNo == 0 && !taken[i+1] {
			inputs[i].BodyNo = i + 1
			taken[i+1] = true
		}
	}
	next := 1
	for i := range inputs {
		if inputs[i].BodyNo > 0 {
			continue
		}
		for taken[next] {
			next++
		}
		inputs[i].BodyNo = next
		taken[next] = true
	}
}

// IsBodyFileName reports whether a body that --save-bodies saves for a run
// over inputs (their names) could be given the file name name:
// "<line>.body", or with several inputs "<N>-<input>-<line>.body" for one
// of them and any N (a resumed run keeps the numbers of the run that wrote
// its records). A body is renamed into place under that name, replacing
// whatever is there; the temporary file it is written to first is always a
// new one, so no other name in the folder is ever written.
func IsBodyFileName(name string, inputs []string) bool {
	line, ok := strings.CutSuffix(name, ".body")
	if !ok {
		return false
	}
	if len(inputs) > 1 {
		pos, rest, _ := strings.Cut(line, "-")
		i, err := strconv.Atoi(pos)
		if err != nil || i < 1 || pos != strconv.Itoa(i) {
			return false
		}
		found := false
		for _, in := range inputs {
			if l, ok := strings.CutPrefix(rest, bodyInputName(in)+"-"); ok {
				if n, err := strconv.ParseInt(l, 10, 64); err == nil && n >= 1 && l == strconv.FormatInt(n, 10) {
					found = true
					break
				}
			}
		}
		return found
	}
	n, err := strconv.ParseInt(line, 10, 64)
	return err == nil && n >= 1 && line == strconv.FormatInt(n, 10)
}
