package node

import (
	"runtime"
	stdsync "sync"
)

// parallel calls fn(i) for every i in [0, n), spread over GOMAXPROCS
// goroutines, and returns when all calls have returned. fn must be safe
// to call concurrently; each i is passed exactly once.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg stdsync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				fn(i)
			}
		})
	}
	wg.Wait()
}
