package batch

import "testing"

// TestDeliveryReaderGone checks when a reader of the output that goes away
// ends the run: only while a record is still to come (a job taken whose
// record is not handed to the writer yet), or when a job is taken after it
// left; never once every record was handed over (its write finds the
// reader gone by itself), nor for jobs a run that ended left without a
// record.
func TestDeliveryReaderGone(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		events string // t: take, h: hand, g: reader gone, e: run ended
		die    bool
	}{
		{"every record handed over", "tthhg", false},
		{"one record still fetched", "tthg", true},
		{"a job not fetched yet", "tg", true},
		{"nothing taken yet", "g", false},
		{"a job taken after the reader left", "thgt", true},
		{"jobs the stopped run left without a record", "ttheg", false},
		{"a line read after the run ended", "thegt", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			died := false
			d := &delivery{die: func() { died = true }}
			for _, ev := range tt.events {
				switch ev {
				case 't':
					d.take()
				case 'h':
					d.hand()
				case 'g':
					d.readerGone()
				case 'e':
					d.runEnded()
				}
			}
			if died != tt.die {
				t.Errorf("after %q died = %v, want %v", tt.events, died, tt.die)
			}
		})
	}
}
