package main

import (
	"errors"
	"slices"
	"testing"
)

// TestSaturate checks that a sweep is extended exactly while its rate
// still rises by more than 10%, and never past the limit.
func TestSaturate(t *testing.T) {
	row := func(c int, rate float64) Row { return Row{System: "s", Concurrency: c, OpsPerSec: rate} }
	// rates a system would reach at each client count
	curve := map[int]float64{64: 400, 256: 1600, 1024: 6000, 2048: 9800, 4096: 9100, 8192: 9000}
	flat := func(ran *[]int) func(int) (Row, error) {
		return func(c int) (Row, error) {
			*ran = append(*ran, c)
			return row(c, curve[c]), nil
		}
	}
	base := []Row{row(64, 400), row(256, 1600), row(1024, 6000)}
	for _, tc := range []struct {
		name  string
		sweep []Row
		limit int
		want  []int // counts run by saturate
	}{
		{"rising until it falls", base, 8192, []int{2048, 4096}},
		{"stopped by the limit", base, 2048, []int{2048}},
		{"limit below the next count", base, 1024, nil},
		{"already flat", []Row{row(256, 6300), row(1024, 6200)}, 8192, nil},
		{"rise of exactly 10% is flat", []Row{row(256, 1000), row(1024, 1100)}, 8192, nil},
		{"one count", []Row{row(64, 400)}, 8192, nil},
		{"empty", nil, 8192, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ran []int
			got, err := saturate(slices.Clone(tc.sweep), tc.limit, flat(&ran))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ran, tc.want) {
				t.Fatalf("ran %v, want %v", ran, tc.want)
			}
			if len(got) != len(tc.sweep)+len(ran) {
				t.Fatalf("sweep has %d rows, want %d", len(got), len(tc.sweep)+len(ran))
			}
		})
	}
	t.Run("error stops the sweep", func(t *testing.T) {
		boom := errors.New("boom")
		got, err := saturate(slices.Clone(base), 8192, func(int) (Row, error) { return Row{}, boom })
		if !errors.Is(err, boom) || len(got) != len(base) {
			t.Fatalf("got %d rows, err %v", len(got), err)
		}
	})
}
