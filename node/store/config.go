package store

import (
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger"
	"github.com/dgraph-io/badger/options"
	dsbadger "github.com/ipfs/go-ds-badger"
)

// LoadingMode says how badger reads a kind of file: through read calls
// (FileIO) or by mapping it into memory (MemoryMap).
type LoadingMode string

// The loading modes. FileIO keeps the resident memory of a large store small
// (DESIGN §10); MemoryMap can be faster for reads when memory is plentiful.
const (
	FileIO    LoadingMode = "fileio"
	MemoryMap LoadingMode = "mmap"
)

func (m LoadingMode) badger() (options.FileLoadingMode, error) {
	switch m {
	case FileIO:
		return options.FileIO, nil
	case MemoryMap:
		return options.MemoryMap, nil
	}
	return 0, fmt.Errorf("loading mode %q is not one of %q or %q", m, FileIO, MemoryMap)
}

// Config holds every badger option the store sets, plus the store's own
// value-log GC schedule. Start from DefaultConfig and change single fields;
// the zero Config is not usable.
//
// Three badger options are not here because the store always sets them the
// same way: Dir and ValueDir (both the directory given to Open, set by
// go-ds-badger), ReadOnly (false: the store writes its format marker on
// first open) and BypassLockGuard (false: the directory lock is what keeps
// two processes from writing one store). go-ds-badger's own GC is switched
// off (GcInterval 0); the store runs GC itself, only when idle.
type Config struct {
	// SyncWrites makes every commit wait for fsync of the value log. The
	// store's promise that Put returns only once its records are on disk
	// rests on it: leave it true outside benchmarks.
	SyncWrites bool

	// Sealer, if set, encrypts every history value (seal.go). nil keeps
	// values in clear, as stores made before encryption at rest.
	Sealer Sealer

	// Truncate lets badger cut a torn write off the end of the value log
	// when it opens after a crash. Without it the store refuses to open after
	// a crash with "Value log truncate required" (DESIGN §10). Only writes
	// that were never acknowledged are cut.
	Truncate bool

	// ValueThreshold: values of at least this many bytes go to the value log
	// and only a pointer stays in the LSM tree. 32 keeps envelopes out of the
	// LSM, which keeps tables and memory small and open fast (DESIGN §10).
	ValueThreshold int

	// MaxTableSize is the size of one LSM table and of the memtable, in
	// bytes. It also bounds one transaction: badger refuses a transaction
	// over 15% of it, which is where MaxBatch comes from.
	MaxTableSize int64

	// LevelOneSize is the maximum size of LSM level 1, in bytes.
	LevelOneSize int64

	// LevelSizeMultiplier is the ratio between the sizes of adjacent levels.
	LevelSizeMultiplier int

	// MaxLevels is the number of LSM levels.
	MaxLevels int

	// NumMemtables is how many memtables may be in memory at once (one
	// being written, the rest waiting to be flushed). Each is MaxTableSize.
	NumMemtables int

	// NumLevelZeroTables: compaction of level 0 starts at this many tables.
	NumLevelZeroTables int

	// NumLevelZeroTablesStall: writes stall at this many level-0 tables.
	NumLevelZeroTablesStall int

	// NumCompactors is the number of compaction goroutines.
	NumCompactors int

	// ValueLogFileSize is the size of one value-log file, in bytes, between
	// 1 MiB and 2 GiB. GC rewrites one whole file at a time, so smaller files
	// mean shorter GC runs and more files.
	ValueLogFileSize int64

	// ValueLogMaxEntries caps the entries in one value-log file.
	ValueLogMaxEntries uint32

	// ValueLogLoadingMode is how value-log files are read.
	ValueLogLoadingMode LoadingMode

	// TableLoadingMode is how LSM tables are read. FileIO keeps resident
	// memory low for a large store (DESIGN §10).
	TableLoadingMode LoadingMode

	// NumVersionsToKeep is how many versions badger keeps of one key. The
	// store keeps record history under keys of its own, so 1 is right.
	NumVersionsToKeep int

	// CompactL0OnClose compacts level 0 when the store closes. Off, so that
	// Close does not hang on a large compaction when a node stops.
	CompactL0OnClose bool

	// LogRotatesToFlush forces a memtable flush after this many value-log
	// rotations, which bounds how much log is replayed on open.
	LogRotatesToFlush int32

	// VerifyValueChecksum makes badger check the checksum of every value it
	// reads from the value log. The store also checks each envelope against
	// its hash on every read.
	VerifyValueChecksum bool

	// EventLogging keeps badger's golang.org/x/net/trace event log in
	// memory. Cairn serves no /debug/requests page, so it is off.
	EventLogging bool

	// GCInterval is how often the store considers running value-log GC. A
	// run happens only when no Put started or ended during the whole last
	// interval (the store is idle), and stops at Close. 0 turns GC off.
	GCInterval time.Duration

	// GCDiscardRatio: GC rewrites a value-log file when at least this share
	// of it is garbage. Between 0 and 1, both excluded; badger suggests 0.5.
	GCDiscardRatio float64
}

// DefaultConfig returns the settings measured on the project's machines
// (DESIGN §10): values in the value log (ValueThreshold 32), 8 MiB tables,
// two memtables, a 16 MiB level one, file I/O for tables and value log,
// durable writes and truncation of torn writes on open. It starts from a copy
// of go-ds-badger's DefaultOptions and sets every field explicitly.
func DefaultConfig() Config {
	o := dsbadger.DefaultOptions // a copy: Options is a value type
	o.SyncWrites = true
	o.Truncate = true
	o.ValueThreshold = 32
	o.MaxTableSize = 8 << 20
	o.LevelOneSize = 16 << 20
	o.LevelSizeMultiplier = 10
	o.MaxLevels = 7
	o.NumMemtables = 2
	o.NumLevelZeroTables = 5
	o.NumLevelZeroTablesStall = 10
	o.NumCompactors = 2
	o.ValueLogFileSize = 256 << 20
	o.ValueLogMaxEntries = 1_000_000
	o.ValueLogLoadingMode = options.FileIO
	o.TableLoadingMode = options.FileIO
	o.NumVersionsToKeep = 1
	o.CompactL0OnClose = false
	o.LogRotatesToFlush = 2
	o.VerifyValueChecksum = true
	o.EventLogging = false
	return Config{
		SyncWrites:              o.SyncWrites,
		Truncate:                o.Truncate,
		ValueThreshold:          o.ValueThreshold,
		MaxTableSize:            o.MaxTableSize,
		LevelOneSize:            o.LevelOneSize,
		LevelSizeMultiplier:     o.LevelSizeMultiplier,
		MaxLevels:               o.MaxLevels,
		NumMemtables:            o.NumMemtables,
		NumLevelZeroTables:      o.NumLevelZeroTables,
		NumLevelZeroTablesStall: o.NumLevelZeroTablesStall,
		NumCompactors:           o.NumCompactors,
		ValueLogFileSize:        o.ValueLogFileSize,
		ValueLogMaxEntries:      o.ValueLogMaxEntries,
		ValueLogLoadingMode:     FileIO,
		TableLoadingMode:        FileIO,
		NumVersionsToKeep:       o.NumVersionsToKeep,
		CompactL0OnClose:        o.CompactL0OnClose,
		LogRotatesToFlush:       o.LogRotatesToFlush,
		VerifyValueChecksum:     o.VerifyValueChecksum,
		EventLogging:            o.EventLogging,
		GCInterval:              5 * time.Minute,
		GCDiscardRatio:          0.5,
	}
}

// validate checks the settings badger would refuse or that would break the
// store, one sentence per problem. Checking first matters: when badger fails
// part-way through opening, its goroutines keep running (DESIGN §10).
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ValueThreshold < 1 || c.ValueThreshold > badger.ValueThresholdLimit {
		bad("ValueThreshold is %d; it must be between 1 and %d bytes", c.ValueThreshold, badger.ValueThresholdLimit)
	}
	if c.MaxTableSize < 1<<20 {
		bad("MaxTableSize is %d; it must be at least 1 MiB", c.MaxTableSize)
	}
	if c.LevelOneSize < c.MaxTableSize {
		bad("LevelOneSize (%d) must be at least MaxTableSize (%d)", c.LevelOneSize, c.MaxTableSize)
	}
	if c.LevelSizeMultiplier < 2 {
		bad("LevelSizeMultiplier is %d; it must be at least 2", c.LevelSizeMultiplier)
	}
	if c.MaxLevels < 2 {
		bad("MaxLevels is %d; it must be at least 2", c.MaxLevels)
	}
	if c.NumMemtables < 1 {
		bad("NumMemtables is %d; it must be at least 1", c.NumMemtables)
	}
	if c.NumLevelZeroTables < 1 || c.NumLevelZeroTablesStall <= c.NumLevelZeroTables {
		bad("NumLevelZeroTables (%d) must be at least 1 and below NumLevelZeroTablesStall (%d)", c.NumLevelZeroTables, c.NumLevelZeroTablesStall)
	}
	if c.NumCompactors < 1 {
		bad("NumCompactors is %d; it must be at least 1 (without compaction the store stalls)", c.NumCompactors)
	}
	if c.ValueLogFileSize < 1<<20 || c.ValueLogFileSize > 2<<30 {
		bad("ValueLogFileSize is %d; it must be between 1 MiB and 2 GiB", c.ValueLogFileSize)
	}
	if c.ValueLogMaxEntries < 1 {
		bad("ValueLogMaxEntries must be at least 1")
	}
	if _, err := c.ValueLogLoadingMode.badger(); err != nil {
		bad("ValueLogLoadingMode: %v", err)
	}
	if _, err := c.TableLoadingMode.badger(); err != nil {
		bad("TableLoadingMode: %v", err)
	}
	if c.NumVersionsToKeep < 1 {
		bad("NumVersionsToKeep is %d; it must be at least 1", c.NumVersionsToKeep)
	}
	if c.LogRotatesToFlush < 1 {
		bad("LogRotatesToFlush is %d; it must be at least 1", c.LogRotatesToFlush)
	}
	if c.GCInterval < 0 {
		bad("GCInterval is %s; use 0 to turn value-log GC off, or a positive interval", c.GCInterval)
	}
	if c.GCInterval > 0 && (c.GCDiscardRatio <= 0 || c.GCDiscardRatio >= 1) {
		bad("GCDiscardRatio is %g; it must be between 0 and 1, both excluded (0.5 is usual)", c.GCDiscardRatio)
	}
	return errors.Join(errs...)
}

// BadgerOptions is the go-ds-badger options a store opened with c uses;
// c must be valid. The sync benchmark opens a bare badger with them to
// measure what the store's engine alone costs (bench.StoreFloor).
func (c Config) BadgerOptions() dsbadger.Options { return c.options() }

// options turns c into go-ds-badger options, starting from a copy of
// dsbadger.DefaultOptions and setting every field; c must be valid.
func (c Config) options() dsbadger.Options {
	o := dsbadger.DefaultOptions
	o.GcInterval = 0 // the store runs GC itself, when idle
	o.GcSleep = 0
	o.GcDiscardRatio = c.GCDiscardRatio
	o.SyncWrites = c.SyncWrites
	o.Truncate = c.Truncate
	o.ReadOnly = false
	o.BypassLockGuard = false
	o.ValueThreshold = c.ValueThreshold
	o.MaxTableSize = c.MaxTableSize
	o.LevelOneSize = c.LevelOneSize
	o.LevelSizeMultiplier = c.LevelSizeMultiplier
	o.MaxLevels = c.MaxLevels
	o.NumMemtables = c.NumMemtables
	o.NumLevelZeroTables = c.NumLevelZeroTables
	o.NumLevelZeroTablesStall = c.NumLevelZeroTablesStall
	o.NumCompactors = c.NumCompactors
	o.ValueLogFileSize = c.ValueLogFileSize
	o.ValueLogMaxEntries = c.ValueLogMaxEntries
	o.ValueLogLoadingMode, _ = c.ValueLogLoadingMode.badger()
	o.TableLoadingMode, _ = c.TableLoadingMode.badger()
	o.NumVersionsToKeep = c.NumVersionsToKeep
	o.CompactL0OnClose = c.CompactL0OnClose
	o.LogRotatesToFlush = c.LogRotatesToFlush
	o.VerifyValueChecksum = c.VerifyValueChecksum
	o.EventLogging = c.EventLogging
	return o
}
