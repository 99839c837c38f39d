package store

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger"
	dsbadger "github.com/ipfs/go-ds-badger"

	"github.com/inpud/cairn/model"
)

// Errors callers branch on. Every error the store returns wraps one of these
// or says in words what failed and what to do.
var (
	// ErrNotFound: the store holds no version of the record asked for.
	ErrNotFound = errors.New("record not found in this store")

	// ErrLocked: another process (or another Open in this one) has the
	// store's directory open. Badger allows one writer per directory.
	ErrLocked = errors.New("record store is in use by another process")

	// ErrBatchTooLarge: a Put group does not fit in one transaction. Split
	// it into groups of at most MaxBatch envelopes and put each.
	ErrBatchTooLarge = errors.New("too many records for one transaction")

	// ErrUnknownFormat: the directory holds a store written in a format this
	// version of cairn does not read (or something that is not a store).
	ErrUnknownFormat = errors.New("record store format not recognised")

	// ErrDamaged: stored bytes do not match their hash or cannot be decoded.
	// The disk or the data directory is damaged; peers and custodians hold
	// copies of shared and custody records.
	ErrDamaged = errors.New("record store is damaged")

	// ErrClosed: the store was used after Close.
	ErrClosed = errors.New("record store is closed")
)

// MaxBatch is the number of envelopes Put always accepts in one call with
// DefaultConfig (MaxTableSize 8 MiB), whatever the mix of new records,
// replacements and tombstones. Badger refuses a transaction over 15% of
// MaxTableSize in key bytes or over 13,107 entries (at 8 MiB); the entry
// count binds first. A new record writes 6 entries (history, feed, current,
// 3 index keys), a new version that moves its origin and template index 7,
// a kind change (which real records never make) 9. Measured with ~1.5 KB
// audits (TestMaxBatch): 2,183 new records or 1,871 such replacements fit;
// 9 entries each would allow 1,456. Larger groups may fit; a group that
// does not fails with ErrBatchTooLarge and stores nothing.
const MaxBatch = 1000

// DefaultFeedLimit is the number of feed entries Feed returns when asked
// for a limit of 0 or less.
const DefaultFeedLimit = 1000

// Stored is one version of a record as the store holds it.
type Stored struct {
	Envelope model.Envelope // the signed bytes, exactly as given to Put
	Payload  model.Payload  // Envelope.Open()
	Hash     string         // Envelope.Hash(): names the version
	Seq      uint64         // local change-feed sequence number it got when stored

	// TakenBack is set when the record's origin took this version's body
	// back from this node (withdraw.go): Envelope is empty, Payload is the
	// version's header without its body, and TakenBackBy is the hash of
	// the signed version that took it back. Such a version is never sent on.
	TakenBack   bool
	TakenBackBy string
}

// Store is a node's record store: current versions, full history, a local
// change feed, indexes and sync checkpoints, in one badger database. All
// methods are safe for concurrent use. Open it, then Close it exactly once
// (further calls of Close do nothing).
type Store struct {
	dir string
	cfg Config
	ds  *dsbadger.Datastore
	db  *badger.DB

	// mu guards closed: every method holds it for reading for its whole
	// run, and Close takes it for writing, so no call is in flight when the
	// database closes.
	mu     sync.RWMutex
	closed bool

	// putMu serialises Put: sequence numbers, counters and the winner of
	// each record are decided by one Put at a time.
	putMu sync.Mutex

	head   atomic.Uint64 // last assigned seq, as committed
	maxHLC atomic.Uint64 // highest HLC stored, as committed

	countMu sync.Mutex
	counts  map[model.Kind]int // current, non-deleted records per kind, as committed

	// puts changes at the start and the end of every Put; the GC loop
	// treats an interval in which it did not change as idle.
	puts       atomic.Uint64
	gcRewrites atomic.Uint64 // value-log files GC rewrote (for tests)

	feedID   string                                   // FeedID; set by Open
	watch    watchers                                 // Watch's channels
	takeBack atomic.Pointer[func(model.Payload) bool] // SetTakeBack

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens the record store in dir, creating the directory and an empty
// store if there is none. It refuses a directory another process has open
// (ErrLocked) and a store of an unknown format (ErrUnknownFormat). Head,
// Counts and MaxHLC are as they were at the last acknowledged Put.
//
// If badger fails part-way through opening (a damaged directory, say), its
// goroutines can keep running: a process that gets an error other than
// ErrLocked, ErrUnknownFormat or a settings error should exit rather than
// retry Open (DESIGN §10).
func Open(dir string, cfg Config) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open record store: no directory given: set the node's data dir")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open record store in %s: the store settings are not usable: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open record store in %s: create the directory: %w", dir, err)
	}
	ds, err := openBadger(dir, cfg)
	if err != nil {
		if isLockError(err) {
			return nil, fmt.Errorf("open record store in %s: another process has it open (stop the other cairn node using this data dir, or give this one its own data dir): %w (%v)", dir, ErrLocked, err)
		}
		return nil, fmt.Errorf("open record store in %s: %w", dir, err)
	}
	s := &Store{
		dir:    dir,
		cfg:    cfg,
		ds:     ds,
		db:     ds.DB,
		counts: map[model.Kind]int{},
		stop:   make(chan struct{}),
	}
	if err := s.load(); err != nil {
		_ = ds.Close()
		return nil, fmt.Errorf("open record store in %s: %w", dir, err)
	}
	if cfg.GCInterval > 0 {
		s.wg.Add(1)
		go s.gcLoop()
	}
	return s, nil
}

// closedMarker is the file Close leaves in the store directory after badger
// closed without error, and Open removes (durably) before any write.
const closedMarker = "cairn-store-closed"

// openBadger opens the database. Unless the last stop was an orderly Close, it
// replays the value log in a separate open with a memtable large enough to
// hold everything that can be unflushed, and closes that open (which flushes
// it in one table), before opening with cfg.
//
// Why: badger v1.6.2's replay (replayFunction in db.go) advances the value-
// log head past a whole transaction and then inserts the transaction's
// entries one by one, making room before each. If the memtable fills half
// way through, it is flushed with the head already past the transaction:
// the table holds part of it, the rest waits in the next memtable, and a
// second crash before that memtable is flushed loses the rest of an
// acknowledged transaction. Replay overflows a memtable whenever the crash
// left one waiting to be flushed. TestCrash found it (half a batch of 50
// missing from history and feed); with this recovery open it finds none.
//
// Unflushed data is at most NumMemtables+2 memtables (those queued for
// flushing, the one being flushed and the live one), and a memtable holds at
// most its arena, 1.3 times MaxTableSize, so it is under 1.3*(NumMemtables+2)
// times MaxTableSize; a recovery memtable of NumMemtables+4 times
// MaxTableSize never fills during replay. The bound uses the current
// settings: before lowering NumMemtables or MaxTableSize, stop the node with
// an orderly Close. The cost is memory, once, after a crash: the larger
// memtable raises the peak resident memory of that open (BenchmarkOpen1M:
// ms/open-after-crash, MB-rss-after-crash). The first instance is collected
// before the second opens.
func openBadger(dir string, cfg Config) (*dsbadger.Datastore, error) {
	marker := filepath.Join(dir, closedMarker)
	_, err := os.Stat(marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rc := cfg
		rc.MaxTableSize = int64(cfg.NumMemtables+4) * cfg.MaxTableSize
		rc.LevelOneSize = max(cfg.LevelOneSize, rc.MaxTableSize)
		opts := rc.options()
		ds, err := dsbadger.NewDatastore(dir, &opts)
		if err != nil {
			return nil, err
		}
		if err := ds.Close(); err != nil {
			return nil, fmt.Errorf("replay the value log after a crash: %w", err)
		}
		// The closed instance's table indexes and memtable are garbage
		// now; collect them before the next open loads its own, or the
		// peak resident memory of this open doubles.
		debug.FreeOSMemory()
	case err != nil:
		return nil, err
	}
	opts := cfg.options()
	ds, err := dsbadger.NewDatastore(dir, &opts)
	if err != nil {
		return nil, err
	}
	// From the first write on, a crash must lead to the recovery open.
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = ds.Close()
		return nil, fmt.Errorf("remove the closed-store marker: %w", err)
	}
	if err := syncDir(dir); err != nil {
		_ = ds.Close()
		return nil, err
	}
	return ds, nil
}

// markClosed records, durably, that badger closed without error.
func markClosed(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, closedMarker), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// isLockError recognises badger's "Cannot acquire directory lock" error.
// Badger v1 wraps with github.com/pkg/errors v0.8, which has Cause but no
// Unwrap, so errors.Is cannot see the flock errno by itself.
func isLockError(err error) bool {
	for e := err; e != nil; {
		if errors.Is(e, syscall.EWOULDBLOCK) || errors.Is(e, syscall.EAGAIN) {
			return true
		}
		c, ok := e.(interface{ Cause() error })
		if !ok || c.Cause() == e {
			break
		}
		e = c.Cause()
	}
	return strings.Contains(err.Error(), "Cannot acquire directory lock")
}

// load checks the format marker (writing it into an empty store) and reads
// the head, counters and max HLC.
func (s *Store) load() error {
	var format []byte
	empty := false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyFormat))
		if errors.Is(err, badger.ErrKeyNotFound) {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			empty = !it.Valid()
			return nil
		}
		if err != nil {
			return err
		}
		format, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("read the store format: %w", err)
	}
	switch {
	case format == nil && empty:
		if err := s.db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte(keyFormat), []byte(formatVersion))
		}); err != nil {
			return fmt.Errorf("initialise a new store: %w", err)
		}
	case format == nil:
		return fmt.Errorf("the directory holds a badger database without a cairn format marker: it is not a cairn record store, or it is damaged; point the node at its own data dir: %w", ErrUnknownFormat)
	case string(format) != formatVersion:
		return fmt.Errorf("the store is in format %q and this cairn reads format %q: run the cairn version that wrote it (or a newer one that migrates it): %w", format, formatVersion, ErrUnknownFormat)
	}
	if err := s.checkSealed(); err != nil {
		return err
	}
	if err := s.loadFeedID(); err != nil {
		return fmt.Errorf("read the feed id: %w", err)
	}

	return s.db.View(func(txn *badger.Txn) error {
		head, err := getU64(txn, []byte(keyHead))
		if err != nil {
			return fmt.Errorf("read the feed head: %w", err)
		}
		maxHLC, err := getU64(txn, []byte(keyMaxHLC))
		if err != nil {
			return fmt.Errorf("read the highest stored clock: %w", err)
		}
		for _, k := range model.Kinds {
			n, err := getU64(txn, countKey(k))
			if err != nil {
				return fmt.Errorf("read the %s count: %w", k, err)
			}
			s.counts[k] = int(n)
		}
		// The last feed entry must be the head: both are written in the
		// same transaction, so anything else means a damaged store.
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(pfxFeed)})
		defer it.Close()
		var last uint64
		if it.Seek(append([]byte(pfxFeed), 0xff)); it.ValidForPrefix([]byte(pfxFeed)) {
			if last, err = parseFeedKey(it.Item().Key()); err != nil {
				return fmt.Errorf("%w: %v", ErrDamaged, err)
			}
		}
		if last != head {
			return fmt.Errorf("%w: the change feed ends at %d but the head says %d; restore the data dir from a backup or from peers", ErrDamaged, last, head)
		}
		s.head.Store(head)
		s.maxHLC.Store(maxHLC)
		return nil
	})
}

// getU64 reads an 8-byte number; a missing key reads as 0.
func getU64(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		var err error
		n, err = readU64(v)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%w: key %s: %v", ErrDamaged, key, err)
	}
	return n, nil
}

// Close stops value-log GC, waits for calls in flight and closes the
// database. It is safe to call more than once; later calls return the first
// call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		s.wg.Wait()
		if err := s.ds.Close(); err != nil {
			s.closeErr = fmt.Errorf("close record store in %s: %w", s.dir, err)
			return
		}
		if err := markClosed(s.dir); err != nil {
			s.closeErr = fmt.Errorf("close record store in %s: closed, but could not note that it closed in order (the next open will replay the log to be safe): %w", s.dir, err)
		}
	})
	return s.closeErr
}

// begin takes the read side of mu for one call; it fails after Close.
func (s *Store) begin() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) end() { s.mu.RUnlock() }

// Head returns the last assigned change-feed sequence number (0 for an
// empty store).
func (s *Store) Head() uint64 { return s.head.Load() }

// MaxHLC returns the highest HLC of any stored version, own or received;
// a node's clock resumes after it on restart.
func (s *Store) MaxHLC() model.HLC { return model.HLC(s.maxHLC.Load()) }

// Counts returns the number of current, non-deleted records of each kind.
// Every kind in model.Kinds is present, with 0 if there are none. The
// counts are kept up to date by Put in the same transaction as the records,
// so they cost no scan.
func (s *Store) Counts() (map[model.Kind]int, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	s.countMu.Lock()
	defer s.countMu.Unlock()
	return maps.Clone(s.counts), nil
}

// Checkpoint returns the feed position saved for peer by SetCheckpoint, or
// 0 if none was saved.
func (s *Store) Checkpoint(peer string) (uint64, error) {
	if peer == "" {
		return 0, errors.New("read sync checkpoint: no peer given")
	}
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.end()
	var seq uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		seq, err = getU64(txn, checkpointKey(peer))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read sync checkpoint for %s: %w", peer, err)
	}
	return seq, nil
}

// SetCheckpoint saves how far this node has pulled peer's change feed. It
// returns once the checkpoint is on disk.
func (s *Store) SetCheckpoint(peer string, seq uint64) error {
	if peer == "" {
		return errors.New("save sync checkpoint: no peer given")
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(checkpointKey(peer), u64(seq))
	})
	if err != nil {
		return fmt.Errorf("save sync checkpoint for %s: %w", peer, err)
	}
	return nil
}

// gcLoop runs value-log GC every GCInterval when the store was idle for the
// whole interval. It returns when stop closes.
func (s *Store) gcLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	last := s.puts.Load()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if n := s.puts.Load(); n != last || n%2 == 1 {
			last = n // a Put ran (or is running): not idle
			continue
		}
		s.runGC()
		last = s.puts.Load()
	}
}

// runGC rewrites value-log files while badger finds some worth rewriting,
// at most a few per idle interval, and stops early for Close or a Put.
func (s *Store) runGC() {
	start := s.puts.Load()
	for range 8 {
		select {
		case <-s.stop:
			return
		default:
		}
		if s.puts.Load() != start {
			return
		}
		if h := testHookGC; h != nil {
			h(true, nil)
		}
		err := s.db.RunValueLogGC(s.cfg.GCDiscardRatio)
		if h := testHookGC; h != nil {
			h(false, err)
		}
		if err != nil {
			// ErrNoRewrite: nothing worth rewriting. ErrRejected: a GC
			// is running already or the database is closing. Anything
			// else will show again on the next interval.
			return
		}
		s.gcRewrites.Add(1)
	}
}

// testHookGC, when set (by tests, before Open), is called before and after
// every value-log GC run.
var testHookGC func(start bool, err error)
