package batch

import "sync"

// delivery tells, when the reader of the output (stdout or an -o FIFO)
// goes away, whether records are still to come: each job the run takes
// gets a record, so while one taken has not been handed to the writer yet
// (it waits or is being fetched), the run could not deliver it and dies at
// once, as a write to the closed pipe would end it. A record handed to the
// writer needs no watch: its write finds the reader gone by itself. Once
// every job taken so far has its record handed over, the reader lost
// nothing: the run goes on, to die at the next job it takes, before
// fetching it, or to end by itself with its own exit code when the input
// has no more.
//
// Its methods are safe for concurrent use.
type delivery struct {
	mu     sync.Mutex
	taken  int64 // jobs sent to the runner, each to get a record
	handed int64 // records handed to the writer
	ended  bool  // the runner is done: no job gets a record any more
	gone   bool  // the reader went away
	die    func()
}

// take counts a job sent to the runner. With the reader gone, its record
// could not be delivered: the run dies.
func (d *delivery) take() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended {
		return
	}
	if d.gone {
		d.die()
	}
	d.taken++
}

// hand counts a record about to be handed to the writer. It is called
// before the record is written: a reader that goes away after it finds
// the write failing instead.
func (d *delivery) hand() {
	d.mu.Lock()
	d.handed++
	d.mu.Unlock()
}

// runEnded says that the runner is done: the jobs it left without a record
// (a stopped or interrupted run) get none, and none is taken any more. It
// reports whether every job taken had its record handed to the writer.
func (d *delivery) runEnded() (allHanded bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	allHanded = d.taken == d.handed
	d.ended = true
	d.taken = d.handed
	return allHanded
}

// readerGone is called when the reader went away: the run dies while a
// record is still to come.
func (d *delivery) readerGone() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gone = true
	if d.taken > d.handed {
		d.die()
	}
}
