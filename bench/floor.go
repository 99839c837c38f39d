package bench

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger"
	dsbadger "github.com/ipfs/go-ds-badger"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/inpud/cairn/model"
)

// The floors below are two parts of a sync's work measured alone, in the
// benchmark's own process with nothing else running, to set beside the
// plain copy: what checking the signatures costs on every core, and what
// writing the records durably into a bare badger costs. A sync does both
// and more (decoding, template checks, the network, the store's indexes),
// so it cannot take less time than either.

// Floor is what one floor measured: the wall time, and the CPU (user and
// system) this process used meanwhile, on all its threads.
type Floor struct {
	Took, CPU time.Duration
}

// processCPU is the user+system CPU this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// onAllCores splits n items evenly over one goroutine per CPU, runs
// part(lo, hi) for each share, and returns the time until the last one
// finished with the CPU used meanwhile, and their errors.
func onAllCores(n int, part func(lo, hi int) error) (Floor, error) {
	workers := runtime.NumCPU()
	per := (n + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	cpu0, t0 := processCPU(), time.Now()
	for w := range workers {
		lo, hi := min(w*per, n), min((w+1)*per, n)
		wg.Go(func() { errs[w] = part(lo, hi) })
	}
	wg.Wait()
	return Floor{Took: time.Since(t0), CPU: processCPU() - cpu0}, errors.Join(errs...)
}

// VerifyFloor checks every envelope's signature against its key with
// model.VerifyBatch, on all cores (onAllCores). Any signature that does not
// verify is an error.
func VerifyFloor(pubs []ed25519.PublicKey, envs []model.Envelope) (Floor, error) {
	if len(pubs) != len(envs) {
		return Floor{}, fmt.Errorf("verify floor: %d keys for %d envelopes", len(pubs), len(envs))
	}
	return onAllCores(len(envs), func(lo, hi int) error {
		for i, err := range model.VerifyBatch(pubs[lo:hi], envs[lo:hi]) {
			if err != nil {
				return fmt.Errorf("verify floor: envelope %d: %w", lo+i, err)
			}
		}
		return nil
	})
}

// OpenFloor decodes every envelope's payload strictly (model.Envelope.Open,
// which a receiver needs to learn a record's origin and audience before it
// may keep it), on all cores (onAllCores). A payload that does not open is
// an error.
func OpenFloor(envs []model.Envelope) (Floor, error) {
	return onAllCores(len(envs), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if _, err := envs[i].Open(); err != nil {
				return fmt.Errorf("open floor: envelope %d: %w", i, err)
			}
		}
		return nil
	})
}

// StoreFloor writes each record under a key of its own (8 bytes) into a
// new badger in dir, opened with opts, in durable transactions of perTxn
// records one after the other, then reads every value back in key order
// with one iterator. It returns the time from the first transaction until
// the last one was committed, and the time of the read (badger's own
// goroutines, which write the value log and flush memtables, are in the
// CPU). It writes one entry a record where the store writes six (history,
// feed, current and three indexes), and reads in the cheapest order where
// a pull server follows its feed.
func StoreFloor(dir string, opts dsbadger.Options, records [][]byte, perTxn int) (written, read Floor, err error) {
	ds, err := dsbadger.NewDatastore(dir, &opts)
	if err != nil {
		return Floor{}, Floor{}, fmt.Errorf("store floor: open badger in %s: %w", dir, err)
	}
	defer func() {
		if cerr := ds.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("store floor: close badger: %w", cerr)
		}
	}()
	db := ds.DB
	cpu0, t0 := processCPU(), time.Now()
	for lo := 0; lo < len(records); lo += perTxn {
		txn := db.NewTransaction(true)
		for i := lo; i < min(lo+perTxn, len(records)); i++ {
			key := binary.BigEndian.AppendUint64([]byte("/f/"), uint64(i))
			if err := txn.Set(key, records[i]); err != nil {
				txn.Discard()
				return Floor{}, Floor{}, fmt.Errorf("store floor: record %d: %w", i, err)
			}
		}
		if err := txn.Commit(); err != nil {
			return Floor{}, Floor{}, fmt.Errorf("store floor: commit records %d to %d: %w", lo, lo+perTxn, err)
		}
	}
	written = Floor{Took: time.Since(t0), CPU: processCPU() - cpu0}

	cpu0, t0 = processCPU(), time.Now()
	txn := db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte("/f/")})
	defer it.Close()
	var buf []byte
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if buf, err = it.Item().ValueCopy(buf[:0]); err != nil {
			return Floor{}, Floor{}, fmt.Errorf("store floor: read record %d back: %w", n, err)
		}
		n++
	}
	if n != len(records) {
		return Floor{}, Floor{}, fmt.Errorf("store floor: read %d records back of %d written", n, len(records))
	}
	read = Floor{Took: time.Since(t0), CPU: processCPU() - cpu0}
	return written, read, nil
}

// noiseChunk is the most plaintext one Noise transport message carries
// (65,535 bytes less its 16-byte tag), as go-libp2p's Noise channel, which
// encrypts every byte two nodes exchange, frames it.
const noiseChunk = 65535 - chacha20poly1305.Overhead

// SealFloor encrypts the records with ChaCha20-Poly1305 in Noise-sized
// messages, as the sending node's secure channel does, and decrypts them
// again, as the receiving node's does, all on one goroutine. A sync over
// libp2p cannot skip either.
func SealFloor(records [][]byte) (Floor, error) {
	key := make([]byte, chacha20poly1305.KeySize)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return Floor{}, fmt.Errorf("seal floor: %w", err)
	}
	var stream []byte
	for _, r := range records {
		stream = binary.AppendUvarint(stream, uint64(len(r)))
		stream = append(stream, r...)
	}
	nonce := make([]byte, chacha20poly1305.NonceSize)
	sealed := make([]byte, 0, noiseChunk+chacha20poly1305.Overhead)
	opened := make([]byte, 0, noiseChunk)
	cpu0, t0 := processCPU(), time.Now()
	for n, lo := uint64(0), 0; lo < len(stream); n, lo = n+1, lo+noiseChunk {
		binary.LittleEndian.PutUint64(nonce[4:], n)
		sealed = aead.Seal(sealed[:0], nonce, stream[lo:min(lo+noiseChunk, len(stream))], nil)
		if opened, err = aead.Open(opened[:0], nonce, sealed, nil); err != nil {
			return Floor{}, fmt.Errorf("seal floor: message %d does not open: %w", n, err)
		}
	}
	return Floor{Took: time.Since(t0), CPU: processCPU() - cpu0}, nil
}
