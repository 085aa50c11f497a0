// Package ring implements a fixed-size ring buffer of float64 samples with running statistics.
package ring

import (
	"errors"
	"math"
	"sort"
)

// ErrEmpty is returned when a statistic is asked of an empty buffer.
var ErrEmpty = errors.New("ring: buffer is empty")

// Buffer keeps the last Cap samples.
type Buffer struct {
	data  []float64
	start int
	count int
	sum   float64
}

// New returns a buffer holding at most capacity samples.
func New(capacity int) *Buffer {
	if capacity <= 0 {
		panic("ring: capacity must be positive")
	}
	return &Buffer{data: make([]float64, capacity)}
}

// Push adds a sample, dropping the oldest one when the buffer is full.
func (b *Buffer) Push(x float64) {
	if b.count < len(b.data) {
		b.data[(b.start+b.count)%len(b.data)] = x
		b.count++
		b.sum += x
		return
	}
	b.sum += x - b.data[b.start]
	b.data[b.start] = x
	b.start = (b.start + 1) % len(b.data)
}

// Len is the number of samples held.
func (b *Buffer) Len() int {
	return b.count
}

// Values returns the samples, oldest first.
func (b *Buffer) Values() []float64 {
	out := make([]float64, b.count)
	for i := 0; i < b.count; i++ {
		out[i] = b.data[(b.start+i)%len(b.data)]
	}
	return out
}

// Mean is the average of the samples held.
func (b *Buffer) Mean() (float64, error) {
	if b.count == 0 {
		return 0, ErrEmpty
	}
	return b.sum / float64(b.count), nil
}

// StdDev is the population standard deviation of the samples held.
func (b *Buffer) StdDev() (float64, error) {
	mean, err := b.Mean()
	if err != nil {
		return 0, err
	}
	var acc float64
	for _, x := range b.Values() {
		d := x - mean
		acc += d * d
	}
	return math.Sqrt(acc / float64(b.count)), nil
}

// Percentile returns the p-th percentile (0..100) by linear interpolation.
func (b *Buffer) Percentile(p float64) (float64, error) {
	if b.count == 0 {
		return 0, ErrEmpty
	}
	values := b.Values()
	sort.Float64s(values)
	rank := p / 100 * float64(len(values)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	frac := rank - float64(lo)
	return values[lo]*(1-frac) + values[hi]*frac, nil
}
