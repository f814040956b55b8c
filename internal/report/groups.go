package report

import (
	"cmp"
	"slices"
)

// groupTable holds at most capacity groups by key, with a min-heap ordered
// by how little each group tells, so that the least telling one is dropped
// when a new key arrives at a full table.
type groupTable struct {
	capacity int
	clock    uint64
	m        map[string]*group
	heap     []*group
}

func newGroupTable(capacity int) groupTable {
	return groupTable{capacity: capacity, m: make(map[string]*group)}
}

// get returns the group for key, creating it (and dropping the least telling
// group if the table is full) when there is none, and marks it as just seen.
// The caller then raises the group's counts, which only ever grow, and calls
// down(g.index) to restore the heap order.
func (t *groupTable) get(key []byte) *group {
	t.clock++
	g := t.m[string(key)]
	if g == nil {
		if len(t.heap) >= t.capacity {
			t.drop()
		}
		g = &group{key: string(key), index: len(t.heap), seen: t.clock}
		t.m[g.key] = g
		t.heap = append(t.heap, g)
		t.up(g.index)
	}
	g.seen = t.clock
	return g
}

// less orders groups from least to most telling: fewer failures, fewer
// records, seen longer ago.
func less(a, b *group) bool {
	if a.failed != b.failed {
		return a.failed < b.failed
	}
	if a.total != b.total {
		return a.total < b.total
	}
	return a.seen < b.seen
}

func (t *groupTable) drop() {
	g := t.heap[0]
	delete(t.m, g.key)
	last := len(t.heap) - 1
	t.swap(0, last)
	t.heap[last] = nil
	t.heap = t.heap[:last]
	t.down(0)
}

func (t *groupTable) swap(i, j int) {
	t.heap[i], t.heap[j] = t.heap[j], t.heap[i]
	t.heap[i].index = i
	t.heap[j].index = j
}

func (t *groupTable) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !less(t.heap[i], t.heap[p]) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *groupTable) down(i int) {
	n := len(t.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && less(t.heap[r], t.heap[l]) {
			m = r
		}
		if !less(t.heap[m], t.heap[i]) {
			return
		}
		t.swap(i, m)
		i = m
	}
}

// top returns up to n groups holding records, attempts or bytes, most
// failures first, then most records, then by key.
func (t *groupTable) top(n int, name func(g *Group, key string)) []Group {
	groups := make([]*group, 0, len(t.heap))
	for _, g := range t.heap {
		if g.total > 0 || g.attempts > 0 || g.bytesOut+g.bytesIn > 0 {
			groups = append(groups, g)
		}
	}
	slices.SortFunc(groups, func(a, b *group) int {
		if c := cmp.Compare(b.failed, a.failed); c != 0 {
			return c
		}
		if c := cmp.Compare(b.total, a.total); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	out := make([]Group, 0, min(n, len(groups)))
	for _, g := range groups[:min(n, len(groups))] {
		r := g.result()
		name(&r, g.key)
		out = append(out, r)
	}
	return out
}
