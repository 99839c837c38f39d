package node

import (
	"runtime/debug"
	"testing"
)

// TestApplyGCSetsTheCollectorUnlessTheEnvironmentDoes: a node sets GOGC
// and the memory limit from its config, but an operator's GOGC or
// GOMEMLIMIT in the environment wins.
func TestApplyGCSetsTheCollectorUnlessTheEnvironmentDoes(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	applyGC(GCConfig{Percent: 300, MemoryLimit: 96 << 20})
	if got := debug.SetGCPercent(100); got != 300 {
		t.Fatalf("GOGC after applyGC = %d; want 300", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 96<<20 {
		t.Fatalf("memory limit after applyGC = %d; want %d", got, 96<<20)
	}

	debug.SetMemoryLimit(oldLimit)
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	applyGC(GCConfig{Percent: 300, MemoryLimit: 96 << 20})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC after applyGC with GOGC=150 in the environment = %d; want it left at 100", got)
	}
	if got := debug.SetMemoryLimit(-1); got != oldLimit {
		t.Fatalf("memory limit after applyGC with GOMEMLIMIT in the environment = %d; want it left at %d", got, oldLimit)
	}
	if d := DefaultConfig(t.TempDir()).GC; d.Percent != 200 || d.MemoryLimit != 128<<20 {
		t.Fatalf("DefaultConfig's GC = %+v; want GOGC 200 and a 128 MiB limit", d)
	}
}
