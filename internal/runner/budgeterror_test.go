package runner

import "testing"

// TestBudgetErrorSaysTheBudgetAsWritten: the message gives --budget as the
// user wrote it, and the bytes spent exactly.
func TestBudgetErrorSaysTheBudgetAsWritten(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  BudgetError
		want string
	}{
		{"as written", BudgetError{Budget: 100000, Text: "100KB", Spent: 100420}, "--budget of 100KB through proxies reached (100420 bytes spent)"},
		{"no text", BudgetError{Budget: 5000, Spent: 5120}, "--budget of 5000 bytes through proxies reached (5120 bytes spent)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}
