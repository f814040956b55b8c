package main

import (
	"runtime"
	"testing"
	"time"
)

func TestGCPercent(t *testing.T) {
	tests := []struct {
		name              string
		scanned, headroom uint64
		want              int
	}{
		{"small heap gets the headroom", 2 << 20, 8 << 20, 400},
		{"headroom over a quarter", 3 << 20, 8 << 20, 266},
		{"heap as large as the headroom", 8 << 20, 8 << 20, 100},
		{"larger heap keeps Go's default", 40 << 20, 8 << 20, 100},
		{"nothing scanned yet", 0, 8 << 20, 100},
		{"a tiny heap is capped", 1, 8 << 20, 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gcPercent(tt.scanned, tt.headroom); got != tt.want {
				t.Errorf("gcPercent(%d, %d) = %d, want %d", tt.scanned, tt.headroom, got, tt.want)
			}
		})
	}
}

// TestGCTunerFollowsCollections checks that the tuner sets GOGC after each
// collection, from what it found live, never below 100, and that once
// stopped it puts back 100 and sets nothing more.
func TestGCTunerFollowsCollections(t *testing.T) {
	set := make(chan int, 16)
	stop := startGCTuner(1<<40, func(p int) { set <- p })
	for i := range 2 {
		runtime.GC()
		select {
		case p := <-set:
			if p <= 100 {
				t.Errorf("collection %d: GOGC %d with a headroom far above the heap, want more than 100", i, p)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("collection %d: the tuner set nothing", i)
		}
	}
	stop()
	if p := <-set; p != 100 {
		t.Errorf("stop set GOGC %d, want 100", p)
	}
	stop()
	runtime.GC()
	runtime.GC()
	select {
	case p := <-set:
		t.Errorf("GOGC %d set after stop", p)
	default:
	}
}

// TestTuneGCLeavesUserSettings checks that GOGC or GOMEMLIMIT set by the
// user turns the tuner off, and that it runs otherwise.
func TestTuneGCLeavesUserSettings(t *testing.T) {
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		stop := tuneGC(func(k string) string {
			if k == name {
				return "50"
			}
			return ""
		})
		if stop != nil {
			stop()
			t.Errorf("%s set: the tuner runs", name)
		}
	}
	stop := tuneGC(func(string) string { return "" })
	if stop == nil {
		t.Fatal("neither set: the tuner does not run")
	}
	stop()
}
