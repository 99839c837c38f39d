package node

import "testing"

// TestWipeRestore10k is RELIABILITY T6 and issue 5's wipe test: a node
// with 10,000 records (a third private, a third members-only, a third
// scoped to one network) and one record another network shared with it
// has its data dir deleted; restore from its keys brings back every one,
// checked record by record (version and signed bytes), and the time is
// logged.
func TestWipeRestore10k(t *testing.T) {
	wipeAndRestore(t, 10_000)
}
