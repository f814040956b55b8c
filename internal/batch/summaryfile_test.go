package batch

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
)

const testRecord = `{"url":"https://a.example/","line":1,"ok":true,"status":200,"bytes":0,"attempts":1,"duration_ms":1,"time":"2025-01-01T00:00:00Z"}` + "\n"

// TestCheckSummaryFile: --summary replaces an empty file or one earlier
// summary, as written or pretty-printed, and refuses anything else that
// holds something unless --overwrite.
func TestCheckSummaryFile(t *testing.T) {
	t.Parallel()
	s := report.NewSummary()
	s.Add(&report.Record{URL: "https://a.example/", Line: 1, OK: true, Status: 200, Attempts: 1, Time: time.Now()})
	written, err := json.Marshal(s.Result(time.Second, false))
	if err != nil {
		t.Fatal(err)
	}
	summary := string(written) + "\n"
	tests := []struct {
		name     string
		holds    string
		replaced bool
	}{
		{"empty", "", true},
		{"summary", summary, true},
		{"summary without newline", string(written), true},
		{"pretty-printed", "{\n  \"total\": 7,\n  \"ok\": 7\n}\n\n", true},
		{"records", testRecord + testRecord, false},
		{"one record", testRecord, false},
		{"summary then records", summary + testRecord, false},
		{"summary then NUL bytes", summary + strings.Repeat("\x00", 1024) + testRecord, false},
		{"two summaries", summary + summary, false},
		{"record with total", `{"url":"https://a.example/","total":1}` + "\n", false},
		{"object without total", `{"ok":1}` + "\n", false},
		{"array", "[" + string(written) + "]\n", false},
		{"text", "hello\n", false},
		{"white space", "\n\n", false},
		{"torn summary", summary[:len(summary)/2], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "s.json")
			if err := os.WriteFile(path, []byte(tt.holds), 0o644); err != nil {
				t.Fatal(err)
			}
			err := checkSummaryFile(path, false, false)
			var se *SetupError
			switch {
			case tt.replaced && err != nil:
				t.Errorf("refused: %v", err)
			case !tt.replaced && !errors.As(err, &se):
				t.Errorf("got %v, want a *SetupError", err)
			case !tt.replaced && !strings.Contains(err.Error(), "already holds results, not a summary: add --overwrite"):
				t.Errorf("message %q", err)
			}
			if err := checkSummaryFile(path, true, false); err != nil {
				t.Errorf("with overwrite: %v", err)
			}
			werr := writeSummaryFile(path, []byte(summary), false)
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			switch {
			case tt.replaced && (werr != nil || string(got) != summary):
				t.Errorf("written: %v, file holds %q", werr, got)
			case !tt.replaced && (werr == nil || string(got) != tt.holds):
				t.Errorf("written over: %v, file holds %q", werr, got)
			}
		})
	}
}
