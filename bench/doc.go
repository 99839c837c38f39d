// Package bench holds what the benchmarks in the repository root
// (sync_bench_test.go, run by `make bench`) need besides Cairn itself: real
// `cairn start` child processes on loopback with their local API, peak RSS
// and TCP byte counts, and a plain loopback TCP copy to compare a sync
// with. Nothing in the program imports it.
package bench
