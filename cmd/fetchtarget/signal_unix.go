//go:build unix

package main

import (
	"os"
	"syscall"
)

// statsSignals are the signals that make fetchtarget write its counters
// without stopping.
var statsSignals = []os.Signal{syscall.SIGUSR1}

func isStatsSignal(sig os.Signal) bool { return sig == syscall.SIGUSR1 }
