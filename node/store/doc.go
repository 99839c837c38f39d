// Package store is a node's record store: every version of every record the
// node holds (its own and those received from peers), the current version of
// each, a local change feed for sync, indexes for listing, and sync
// checkpoints, in one badger v1 database (github.com/ipfs/go-ds-badger, which
// wraps badger v1.6.2) in the node's data dir.
//
// # Durability
//
// A Put is one badger transaction: all of its envelopes are stored, with
// their feed entries, index entries, counters and head, or none are. Put
// returns only once the transaction is synced to disk (Config.SyncWrites),
// so every acknowledged version survives a crash or power cut. TestCrash
// checks exactly that: it SIGKILLs a writing process at 20 random moments
// (also during value-log GC) and then finds every acknowledged version,
// a gapless feed and counters that match the records.
//
// Opening after a crash needs no step from the user, but Open does more
// than a plain badger open. Badger v1.6.2 can split a committed transaction
// when it replays its value log: replay moves the log head past the whole
// transaction, then inserts its entries one at a time, flushing the memtable
// when it fills. A flush half way through writes a table that holds part of
// the transaction under a head that claims all of it. A second crash before
// the next flush then loses the rest of a transaction that was
// acknowledged. TestCrash found this as half a batch missing from history
// and the feed, in 4 of 6 runs. So when the last stop was not an orderly Close
// (Close leaves a marker file, and Open removes it durably before any
// write), Open first opens badger with a memtable large enough for
// everything that can be waiting to be flushed, lets it replay and truncate
// the torn tail (Config.Truncate; only unacknowledged writes are there), and
// closes it, which flushes the replayed data as one table. Then it opens the
// store with the configured options, with nothing left to replay. See
// openBadger.
//
// Reads check every envelope against the hash in its key, and fail with
// ErrDamaged rather than return bytes the disk changed.
//
// Envelope bytes are stored exactly as given, never re-encoded.
//
// With Config.Sealer (encryption at rest, seal.go), each /h/ value is sealed
// whole under its key as additional data; everything else stays in clear.
//
// # Key layout (format "1")
//
//	/m/format                          "1": the store format, written on first open; Open
//	                                   refuses any other value (ErrUnknownFormat)
//	/m/head                            last assigned feed seq (8 bytes, big-endian)
//	/m/maxhlc                          highest HLC of any stored version (8 bytes)
//	/m/feedid                          random id of this store's change feed (feedid.go)
//	/m/sealed                          "1": history values are sealed by Config.Sealer
//	                                   (seal.go); Open refuses the store without one
//	/m/count/<kind>                    current, non-deleted records of a kind (8 bytes)
//	/h/<id>/<version %020d>/<hash>     one version: its seq (8 bytes) then the envelope
//	                                   (model.Envelope.MarshalBinary), or, once its origin
//	                                   took the body back, 0x00 and a stub (withdraw.go)
//	/c/<seq %016x>                     feed entry: the /h/ key of the version stored, with
//	                                   its origin and audience under a CRC (keys.go
//	                                   feedValue); older entries hold the /h/ key alone
//	/r/<id>                            the current version: a summary pointing at its /h/ key
//	/i/kind/<kind>/<id>                index of current versions by kind (empty value)
//	/i/origin/<origin>/<id>            ... by origin network
//	/i/template/<ref>/<id>             ... by template ref ("iduit-bg/3.2@2017") of audits
//	/k/<peer>                          pull checkpoint: the peer's feed seq (8 bytes);
//	                                   /k/receipt:<network> the receipts sent to it
//	/kf/<peer>                         the id of the peer's feed its checkpoint counts in
//	/d/<id>/<network>                  delivery receipt for an own record: the version
//	                                   and hash that network holds (receipts.go)
//	/u/...                             custody copies kept for other networks: sealed
//	                                   blobs this node cannot open (custody.go)
//
// Zero-padded versions and fixed-width hex seqs sort numerically, so history
// iterates oldest first and the feed in order. Index keys end in a record id
// of fixed length (26), so a key splits from the right even though template
// refs contain '/'. Tombstones stay indexed (under the template of the
// version they delete, when they carry none); List skips them unless asked.
//
// /r/<id> holds a summary, not a second copy of the envelope: the version,
// HLC, author and hash (which name the /h/ key), the deleted flag, and the
// kind, origin and template it is indexed under. Three reasons. With values
// in the value log (ValueThreshold 32, DESIGN §10) a copy would double the
// value-log bytes of every version written, and each replaced copy would be
// ~1.5 KB of garbage for value-log GC; the summary is ~100 bytes. One copy of
// the signed bytes cannot disagree with another. And the summary is all that
// model.Wins, index upkeep and List's filters need, without decoding JSON.
// The cost is a second point read in Get, in the same snapshot.
//
// # Change feed
//
// Every version newly stored gets the next local sequence number, with no
// gaps: seqs are assigned under Put's lock and committed with the versions
// they name. Feed pages through it with a badger iterator (Prefix and Seek),
// so a page costs the same at the start or the end of a large feed; the
// go-datastore Query API has no start key and would not (DESIGN §10).
//
// # Value-log GC
//
// A goroutine owned by the Store runs badger's value-log GC every
// Config.GCInterval, only if no Put ran during the whole interval, and stops
// at Close. Badger v1 has a history of GC bugs (RELIABILITY §1); the tests
// run GC with tiny value-log files, also while a writer is being killed.
package store
