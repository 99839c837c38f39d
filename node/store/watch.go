package store

import "sync"

// watchers are the channels Watch handed out. A Put that stored something
// sends on each without blocking: a channel with a signal already pending
// needs no second one, as its reader reads Head afterwards anyway.
type watchers struct {
	mu  sync.Mutex
	chs map[chan struct{}]struct{}
}

// Watch returns a channel that receives after every Put that stored at
// least one new version (the feed grew), and a function that stops the
// watch. Signals coalesce: a reader that falls behind gets one signal for
// many Puts and should read Head, never count signals.
func (s *Store) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.watch.mu.Lock()
	if s.watch.chs == nil {
		s.watch.chs = map[chan struct{}]struct{}{}
	}
	s.watch.chs[ch] = struct{}{}
	s.watch.mu.Unlock()
	return ch, func() {
		s.watch.mu.Lock()
		delete(s.watch.chs, ch)
		s.watch.mu.Unlock()
	}
}

// changed signals every watcher.
func (s *Store) changed() {
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	for ch := range s.watch.chs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
