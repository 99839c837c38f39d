package node

import (
	"runtime"
	stdsync "sync"
)

// parallelChunks splits [0, n) into one contiguous chunk per goroutine,
// at most GOMAXPROCS of them, calls fn(lo, hi) for each, and returns when
// all calls have returned. Contiguous chunks let fn work on a run of
// items at once (the sink checks a chunk's signatures in batches).
func parallelChunks(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg stdsync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { fn(lo, hi) })
	}
	wg.Wait()
}
