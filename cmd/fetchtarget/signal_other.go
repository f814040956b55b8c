//go:build !unix

package main

import "os"

// statsSignals is empty where there is no SIGUSR1: the counters are
// written on exit only.
var statsSignals []os.Signal

func isStatsSignal(os.Signal) bool { return false }
