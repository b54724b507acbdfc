package main

import (
	"fmt"
	"math"
	"slices"
)

// Dist is one figure measured over repeated runs.
type Dist []float64

// Add records one run's value.
func (d *Dist) Add(v float64) { *d = append(*d, v) }

func (d Dist) sorted() []float64 {
	s := slices.Clone([]float64(d))
	slices.Sort(s)
	return s
}

// Min, Median and Max summarize the runs; NaN when there were none.
func (d Dist) Min() float64 {
	if len(d) == 0 {
		return math.NaN()
	}
	return d.sorted()[0]
}

func (d Dist) Max() float64 {
	if len(d) == 0 {
		return math.NaN()
	}
	return d.sorted()[len(d)-1]
}

func (d Dist) Median() float64 {
	s := d.sorted()
	switch n := len(s); {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return s[n/2]
	default:
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// Valid says the figure was measured: at least one run, every value finite.
func (d Dist) Valid() bool {
	if len(d) == 0 {
		return false
	}
	for _, v := range d {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// Positive says the figure was measured and every run gave more than zero.
func (d Dist) Positive() bool {
	if !d.Valid() {
		return false
	}
	for _, v := range d {
		if v <= 0 {
			return false
		}
	}
	return true
}

// Cells renders min, median and max with the given format.
func (d Dist) Cells(format string) string {
	if len(d) == 0 {
		return "– | – | –"
	}
	return fmt.Sprintf(format+" | "+format+" | "+format, d.Min(), d.Median(), d.Max())
}

// Ratio returns a[i]/b[i] for the runs both have.
func Ratio(a, b Dist) Dist {
	var r Dist
	for i := 0; i < len(a) && i < len(b); i++ {
		if b[i] != 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return r
}
