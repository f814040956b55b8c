package batch

import (
	"errors"
	"regexp"
	"strconv"
	"testing"

	"github.com/fetchctl/fetchctl/internal/report"
)

// TestCheckMinSuccessMessage: the line below --min-success gives the ratio
// with 4 decimals, or as many more as it takes to read below the
// threshold as the line writes it: never equal to it, never above it.
func TestCheckMinSuccessMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ok, total int64
		min       float64
		want      string
	}{
		{name: "plain", ok: 1, total: 2, min: 0.9, want: "success ratio 0.5000 is below --min-success 0.9"},
		{name: "rounds to the threshold", ok: 2, total: 3, min: 0.6667, want: "success ratio 0.66667 is below --min-success 0.6667"},
		{name: "rounds to a longer threshold", ok: 2, total: 3, min: 0.66667, want: "success ratio 0.666667 is below --min-success 0.66667"},
		{name: "rounds above the threshold", ok: 97999, total: 100000, min: 0.98, want: "success ratio 0.97999 is below --min-success 0.98"},
		{name: "rounds to 1", ok: 99999, total: 100000, min: 1, want: "success ratio 0.99999 is below --min-success 1"},
		{name: "one in ten million short", ok: 9999999, total: 10000000, min: 1, want: "success ratio 0.9999999 is below --min-success 1"},
		{name: "small threshold", ok: 0, total: 5, min: 0.0000001, want: "success ratio 0.0000 is below --min-success 0.0000001"},
		{name: "small threshold with digits", ok: 1, total: 1000000, min: 0.0000015, want: "success ratio 0.0000 is below --min-success 0.0000015"},
		{name: "tiny threshold", ok: 0, total: 1, min: 1e-20, want: "success ratio 0.0000 is below --min-success 0.00000000000000000001"},
	}
	number := regexp.MustCompile(`ratio (\S+) is below --min-success (\S+)$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := report.Result{Total: tt.total, OK: tt.ok, SuccessRatio: float64(tt.ok) / float64(tt.total)}
			err := CheckMinSuccess(res, tt.min)
			var be *BelowMinError
			if !errors.As(err, &be) {
				t.Fatalf("CheckMinSuccess = %v, want a *BelowMinError", err)
			}
			if be.Msg != tt.want {
				t.Errorf("message %q, want %q", be.Msg, tt.want)
			}
			m := number.FindStringSubmatch(be.Msg)
			if m == nil {
				t.Fatalf("message %q gives no ratio and threshold", be.Msg)
			}
			ratio, err1 := strconv.ParseFloat(m[1], 64)
			min, err2 := strconv.ParseFloat(m[2], 64)
			if err1 != nil || err2 != nil || ratio >= min {
				t.Errorf("message %q: the ratio does not read below the threshold", be.Msg)
			}
		})
	}
}

// TestCheckMinSuccessNoRecord: with no record the line names the
// threshold as the user wrote it, in plain decimals.
func TestCheckMinSuccessNoRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		min  float64
		want string
	}{
		{0.5, "no record: --min-success 0.5 needs at least one"},
		{1, "no record: --min-success 1 needs at least one"},
		{0.0000001, "no record: --min-success 0.0000001 needs at least one"},
		{0.0000015, "no record: --min-success 0.0000015 needs at least one"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			var be *BelowMinError
			if err := CheckMinSuccess(report.Result{SuccessRatio: 1}, tt.min); !errors.As(err, &be) || be.Msg != tt.want {
				t.Errorf("CheckMinSuccess(no record, %v) = %v, want %q", tt.min, err, tt.want)
			}
		})
	}
}
