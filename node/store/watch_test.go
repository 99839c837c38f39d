package store

import (
	"testing"

	"github.com/inpud/cairn/model"
)

// TestWatch: a watcher hears of a Put that stored something, not of one
// that held only duplicates, and nothing after it stops watching.
func TestWatch(t *testing.T) {
	s := openStore(t, t.TempDir(), testConfig())
	ch, stop := s.Watch()
	a := sealRec(t, rec{id: model.NewID(t0, nil)})
	mustPut(t, s, a)
	select {
	case <-ch:
	default:
		t.Fatal("no signal after a Put that stored a version")
	}
	mustPut(t, s, a) // a duplicate: the feed does not grow
	select {
	case <-ch:
		t.Fatal("a signal after a Put of duplicates only")
	default:
	}
	// Two Puts before the reader looks coalesce into one signal.
	mustPut(t, s, sealRec(t, rec{id: model.NewID(t0, nil)}))
	mustPut(t, s, sealRec(t, rec{id: model.NewID(t0, nil)}))
	<-ch
	select {
	case <-ch:
		t.Fatal("two signals for two Puts the reader had not yet seen")
	default:
	}
	stop()
	mustPut(t, s, sealRec(t, rec{id: model.NewID(t0, nil)}))
	select {
	case <-ch:
		t.Fatal("a signal after the watch stopped")
	default:
	}
}
