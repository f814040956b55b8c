package report

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactPercentile is the nearest-rank percentile of sorted values.
func exactPercentile(sorted []float64, q float64) float64 {
	r := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(r, 1)-1]
}

func TestHistogramAccuracy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		gen  func(*rand.Rand) float64
	}{
		{"proxy latencies", func(r *rand.Rand) float64 { return math.Exp(r.NormFloat64()*0.8 + math.Log(150)) }},
		{"loopback", func(r *rand.Rand) float64 { return 0.05 + r.ExpFloat64()*0.3 }},
		{"timeouts and fast answers", func(r *rand.Rand) float64 {
			if r.IntN(10) == 0 {
				return 30000 + r.Float64()
			}
			return 20 + r.Float64()*10
		}},
		{"every scale", func(r *rand.Rand) float64 { return math.Pow(10, r.Float64()*9-3) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(7, 11))
			var h histogram
			var sh sparseHistogram
			vals := make([]float64, 20000)
			for i := range vals {
				v := tt.gen(rng)
				vals[i] = v
				h.add(v)
				sh.add(bucketOf(v), v)
			}
			slices.Sort(vals)
			for _, c := range []struct {
				name   string
				got    Latency
				relErr float64
			}{
				{"dense", h.latency(), 0.01},
				{"sparse", sh.latency(), 0.035},
			} {
				for i, got := range []float64{c.got.P50, c.got.P90, c.got.P99} {
					want := exactPercentile(vals, quantiles[i])
					// Below 1 ms the result is rounded to 0.001 ms.
					if tol := max(want*c.relErr, 0.0005); math.Abs(got-want) > tol {
						t.Errorf("%s p%v = %v, want %v within %v", c.name, quantiles[i]*100, got, want, tol)
					}
				}
				if want := roundLatency(vals[len(vals)-1]); c.got.Max != want {
					t.Errorf("%s max = %v, want %v", c.name, c.got.Max, want)
				}
			}
		})
	}
}

func TestHistogramSmallCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		vals []float64
		want Latency
	}{
		{"empty", nil, Latency{}},
		{"one value is exact", []float64{84.25}, Latency{P50: 84.25, P90: 84.25, P99: 84.25, Max: 84.25}},
		{"zero", []float64{0}, Latency{}},
		{"equal values are exact", []float64{1234, 1234, 1234}, Latency{P50: 1234, P90: 1234, P99: 1234, Max: 1234}},
		{"past the range", []float64{3e6, 1e7, 2e7, 3e7}, Latency{P50: 0x1p22, P90: 0x1p22, P99: 0x1p22, Max: 3e7}},
		{"below the range", []float64{0.0001, 0.0002}, Latency{P50: 0, P90: 0, P99: 0, Max: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h histogram
			var sh sparseHistogram
			for _, v := range tt.vals {
				h.add(v)
				sh.add(bucketOf(v), v)
			}
			if got := h.latency(); got != tt.want {
				t.Errorf("dense latency = %+v, want %+v", got, tt.want)
			}
			if got := sh.latency(); got != tt.want {
				t.Errorf("sparse latency = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBucketOfBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    float64
		want int
	}{
		{math.NaN(), 0},
		{-1, 0},
		{0, 0},
		{0x1p-11, 0},
		{0x1p-10, 1},
		{0x1p-10 * (1 + 1.0/histSub), 2},
		{0x1p22 - 1e-6, histBuckets - 2},
		{0x1p22, histBuckets - 1},
		{math.Inf(1), histBuckets - 1},
	}
	for _, tt := range tests {
		if got := bucketOf(tt.v); got != tt.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tt.v, got, tt.want)
		}
	}
	// Every value lies within half a bucket's width of the bucket's midpoint.
	for v := 0x1p-10; v < 0x1p22; v *= 1.0137 {
		mid := bucketMid(bucketOf(v), histSubBits)
		if err := math.Abs(mid-v) / v; err > 1.0/(2*histSub) {
			t.Fatalf("bucketMid of %v = %v: error %.4f, want at most %.4f", v, mid, err, 1.0/(2*histSub))
		}
		cmid := bucketMid(coarseOf(bucketOf(v)), histSubBits-coarseShift)
		if err := math.Abs(cmid-v) / v; err > 1.0/(2*histSub>>coarseShift) {
			t.Fatalf("coarse bucketMid of %v = %v: error %.4f", v, cmid, err)
		}
	}
}

func TestRoundLatency(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want float64 }{
		{0.12345, 0.123},
		{1.23456, 1.235},
		{84.2345, 84.23},
		{412.34, 412.3},
		{12345.6, 12346},
	}
	for _, tt := range tests {
		if got := roundLatency(tt.in); got != tt.want {
			t.Errorf("roundLatency(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
