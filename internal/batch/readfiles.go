package batch

import (
	"io"
	"os"
	"slices"
	"strings"

	"github.com/fetchctl/fetchctl/internal/settings"
)

// The files a run reads besides its inputs (the config, proxy, body and
// CA files), which an output must not overwrite and stdin may be only once.

// readFile is a file the run reads besides its inputs, as the flag that
// names it shows it, and what writing over it would destroy.
type readFile struct {
	flag, path, what string
	name             string // the flag alone: --cacert
}

// readFiles are the files the run reads besides its inputs: the config
// file, the proxy file, the request body file and the CA file.
func readFiles(cfg *Config) []readFile {
	return readFilesOf(cfg.settings)
}

func readFilesOf(r *settings.Settings) []readFile {
	if r == nil {
		return nil
	}
	var reads []readFile
	if r.ConfigFile != "" {
		reads = append(reads, readFile{"--config " + r.ConfigFile, r.ConfigFile, "settings", "--config"})
	}
	if r.ProxyFile != "" {
		reads = append(reads, readFile{"--proxy-file " + r.ProxyFile, r.ProxyFile, "proxies", "--proxy-file"})
	}
	if strings.HasPrefix(r.Data, "@") {
		reads = append(reads, readFile{"--data " + r.Data, r.Data[1:], "request body", "--data"})
	}
	if r.CACert != "" {
		reads = append(reads, readFile{"--cacert " + r.CACert, r.CACert, "CA certificates", "--cacert"})
	}
	return reads
}

// CheckStdinNotRead refuses a file the run reads besides its inputs (each
// named as flag and path: --cacert and its file) that is stdin, by
// /dev/stdin, /dev/fd/0 or the file stdin comes from, when stdin is also
// the URL list (inputs none or "-"): one of the two would find it read,
// or read the other's lines. Call it before the file is read. stdin that
// is no *os.File (a test's) is never refused.
func CheckStdinNotRead(inputs []string, stdin io.Reader, files ...[2]string) error {
	if len(inputs) > 0 && !slices.Contains(inputs, "-") {
		return nil
	}
	f, ok := stdin.(*os.File)
	if !ok {
		return nil
	}
	in, err := f.Stat()
	if err != nil {
		return nil
	}
	for _, nf := range files {
		flag, path := nf[0], nf[1]
		if path == "" {
			continue
		}
		if fi, err := os.Stat(path); err == nil && os.SameFile(fi, in) {
			return setupErrorf("%s %s is stdin, which the URL list is read from: give one of them as a file", flag, path)
		}
	}
	return nil
}

// StdinReads are the files of r that [CheckStdinNotRead] checks once the
// settings are loaded: the proxy file, the request body file and the CA
// file (the config file is checked before it is read).
func StdinReads(r *settings.Settings) [][2]string {
	var out [][2]string
	for _, rf := range readFilesOf(r) {
		if rf.name != "--config" {
			out = append(out, [2]string{rf.name, rf.path})
		}
	}
	return out
}

// isRead refuses a flag's path that is one of the files the run reads.
func isRead(flag, path string, reads []readFile) error {
	fi := regularFile(path)
	if fi == nil {
		return nil
	}
	for _, rf := range reads {
		if other := regularFile(rf.path); other != nil && os.SameFile(fi, other) {
			return setupErrorf("%s %s is the %s: writing it would destroy the %s; name another file", flag, path, rf.flag, rf.what)
		}
	}
	return nil
}
