package report

import (
	"math"
	"slices"
)

// The latency histograms are log-linear: each power of two from 2^histMinExp
// ms (about 1 µs) to 2^histMaxExp ms (about 70 minutes) is cut into histSub
// equal buckets, plus one bucket below that range and one above it. A bucket
// is at most 1/histSub of its lower bound wide, so its midpoint is within
// 1/(2*histSub), 0.8%, of any value in it. The per-group histograms merge
// 2^coarseShift neighbouring buckets into one: 16 a power of two, within
// 3.2%.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histMinExp  = -10
	histMaxExp  = 22
	histBuckets = (histMaxExp-histMinExp)*histSub + 2
	coarseShift = 2
)

// bucketOf returns the fine bucket of v milliseconds: 0 below the range (and
// for NaN or negative values), histBuckets-1 above it. Percentiles that fall
// above the range read as its top, 2^22 ms (about 70 minutes).
func bucketOf(v float64) int {
	switch {
	case !(v >= 0x1p-10):
		return 0
	case v >= 0x1p22:
		return histBuckets - 1
	}
	frac, exp := math.Frexp(v) // v = frac * 2^exp, frac in [0.5, 1)
	octave := exp - 1 - histMinExp
	sub := int((frac*2 - 1) * histSub)
	return 1 + octave*histSub + sub
}

// bucketMid returns the midpoint of bucket i of a histogram with 2^subBits
// buckets per power of two. The bucket above the range returns its lower
// bound; callers clamp to the exact maximum anyway.
func bucketMid(i, subBits int) float64 {
	if i <= 0 {
		return 0
	}
	i--
	sub := 1 << subBits
	octave, s := i/sub, i%sub
	lo := math.Ldexp(1+float64(s)/float64(sub), octave+histMinExp)
	if octave >= histMaxExp-histMinExp {
		return lo
	}
	width := math.Ldexp(1/float64(sub), octave+histMinExp)
	return lo + width/2
}

// coarseOf maps a fine bucket to the per-group bucket holding it.
func coarseOf(fine int) int {
	if fine == 0 {
		return 0
	}
	return 1 + (fine-1)>>coarseShift
}

// quantiles are the percentiles the summary reports.
var quantiles = [3]float64{0.50, 0.90, 0.99}

// histogram is the dense, whole-run latency histogram (16 KiB). Its zero
// value is empty and usable.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max float64
}

func (h *histogram) add(v float64) {
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if h.n == 0 || v > h.max {
		h.max = v
	}
	h.n++
	h.counts[bucketOf(v)]++
}

// latency returns the percentiles (nearest rank, within 0.8% and never
// outside the exact minimum and maximum) and the exact maximum.
func (h *histogram) latency() Latency {
	if h.n == 0 {
		return Latency{}
	}
	var out [len(quantiles)]float64
	q, cum := 0, uint64(0)
	for i, c := range h.counts {
		cum += c
		for q < len(quantiles) && cum >= rank(quantiles[q], h.n) {
			out[q] = clamp(bucketMid(i, histSubBits), h.min, h.max)
			q++
		}
		if q == len(quantiles) {
			break
		}
	}
	return newLatency(out, h.max)
}

// bucketCount is one occupied bucket of a sparse histogram.
type bucketCount struct {
	bucket uint16
	n      uint32
}

// sparseHistogram is the per-group latency histogram: coarse buckets, and
// only the occupied ones, kept sorted. A host whose answers all take about
// the same time costs a few dozen bytes; the worst case is 514 buckets
// (4 KiB). Its zero value is empty and usable.
type sparseHistogram struct {
	buckets  []bucketCount
	n        uint64
	min, max float64
}

func (h *sparseHistogram) add(fine int, v float64) {
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if h.n == 0 || v > h.max {
		h.max = v
	}
	h.n++
	b := uint16(coarseOf(fine))
	i, found := slices.BinarySearchFunc(h.buckets, b, func(c bucketCount, b uint16) int {
		return int(c.bucket) - int(b)
	})
	if !found {
		h.buckets = slices.Insert(h.buckets, i, bucketCount{bucket: b})
	}
	if h.buckets[i].n < math.MaxUint32 {
		h.buckets[i].n++
	}
}

func (h *sparseHistogram) latency() Latency {
	if h.n == 0 {
		return Latency{}
	}
	var total uint64
	for _, c := range h.buckets {
		total += uint64(c.n)
	}
	var out [len(quantiles)]float64
	q, cum := 0, uint64(0)
	for _, c := range h.buckets {
		cum += uint64(c.n)
		for q < len(quantiles) && cum >= rank(quantiles[q], total) {
			out[q] = clamp(bucketMid(int(c.bucket), histSubBits-coarseShift), h.min, h.max)
			q++
		}
		if q == len(quantiles) {
			break
		}
	}
	return newLatency(out, h.max)
}

// rank is the 1-based nearest rank of quantile q among n values.
func rank(q float64, n uint64) uint64 {
	r := uint64(math.Ceil(q * float64(n)))
	return max(r, 1)
}

func clamp(v, lo, hi float64) float64 {
	return min(max(v, lo), hi)
}

func newLatency(p [len(quantiles)]float64, maxV float64) Latency {
	return Latency{
		P50: roundLatency(p[0]),
		P90: roundLatency(p[1]),
		P99: roundLatency(p[2]),
		Max: roundLatency(maxV),
	}
}

// roundLatency rounds a latency to four significant digits, so that
// rounding adds at most 0.05% to the histogram's error: a whole number of
// milliseconds from 1 s on, 0.1 ms from 100 ms, 0.01 ms from 10 ms and
// 0.001 ms below that.
func roundLatency(v float64) float64 {
	scale := 1000.0
	switch {
	case v >= 1000:
		scale = 1
	case v >= 100:
		scale = 10
	case v >= 10:
		scale = 100
	}
	return math.Round(v*scale) / scale
}
