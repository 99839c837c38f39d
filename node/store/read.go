package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	badger "github.com/dgraph-io/badger"

	"github.com/inpud/cairn/model"
)

// Get returns the current version of record id: the winner by model.Wins
// among the versions held. It may be a tombstone (Payload.Deleted). A
// record the store holds no version of gives an error wrapping ErrNotFound.
func (s *Store) Get(id string) (Stored, error) {
	if err := s.begin(); err != nil {
		return Stored{}, err
	}
	defer s.end()
	var st Stored
	err := s.db.View(func(txn *badger.Txn) error {
		cur, ok, err := getCurrent(txn, id)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		st, err = s.readVersion(txn, historyKey(id, cur.Version, cur.Hash))
		return err
	})
	if err != nil {
		return Stored{}, fmt.Errorf("get record %s: %w", id, err)
	}
	return st, nil
}

// History returns every version of record id the store holds, oldest
// first: by version number, and among versions with the same number (a
// conflict) in winning order, so the last one is the current version.
func (s *Store) History(id string) ([]Stored, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	var out []Stored
	err := s.db.View(func(txn *badger.Txn) error {
		pfx := historyPrefix(id)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
		defer it.Close()
		for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
			st, err := s.decodeVersion(it.Item())
			if err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read history of record %s: %w", id, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read history of record %s: %w", id, ErrNotFound)
	}
	slices.SortStableFunc(out, func(a, b Stored) int {
		switch {
		case a.Payload.Version != b.Payload.Version:
			return cmpU64(a.Payload.Version, b.Payload.Version)
		case model.Wins(b.Payload, a.Payload, b.Hash, a.Hash):
			return -1
		case model.Wins(a.Payload, b.Payload, a.Hash, b.Hash):
			return 1
		}
		return 0
	})
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readVersion reads one history entry by key.
func (s *Store) readVersion(txn *badger.Txn, hk []byte) (Stored, error) {
	item, err := txn.Get(hk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Stored{}, fmt.Errorf("%w: version %s is indexed but missing from history; restore this record from a peer", ErrDamaged, hk)
	}
	if err != nil {
		return Stored{}, err
	}
	return s.decodeVersion(item)
}

// decodeVersion turns a history entry into a Stored, checking the
// envelope against the hash in its key: the store verifies the integrity of
// what it returns rather than trusting the disk.
func (s *Store) decodeVersion(item *badger.Item) (Stored, error) {
	key := item.KeyCopy(nil)
	val, err := item.ValueCopy(nil)
	if err != nil {
		return Stored{}, fmt.Errorf("read %s: %w", key, err)
	}
	if val, err = s.openValue(key, val); err != nil {
		return Stored{}, err
	}
	return decodeValue(key, val)
}

// decodeValue is decodeVersion on a key and value already read.
func decodeValue(key, val []byte) (Stored, error) {
	id, version, hash, err := parseHistoryKey(key)
	if err != nil {
		return Stored{}, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	damaged := func(what string, args ...any) error {
		return fmt.Errorf("%w: record %s version %d: %s; fetch it again from a peer", ErrDamaged, id, version, fmt.Sprintf(what, args...))
	}
	if len(val) < 9 {
		return Stored{}, damaged("the stored entry is %d bytes", len(val))
	}
	seq, _ := readU64(val[:8])
	if val[8] == stubMark {
		st, err := decodeStub(val[8:])
		if err != nil {
			return Stored{}, damaged("its stub is unreadable: %v", err)
		}
		if st.Payload.ID != id || st.Payload.Version != version {
			return Stored{}, damaged("the stored stub is of record %s version %d", st.Payload.ID, st.Payload.Version)
		}
		return Stored{Payload: st.Payload, Hash: hash, Seq: seq, TakenBack: true, TakenBackBy: st.By}, nil
	}
	var env model.Envelope
	if err := env.UnmarshalBinary(val[8:]); err != nil {
		return Stored{}, damaged("%v", err)
	}
	sum := sha256.Sum256(env.Payload)
	if hex.EncodeToString(sum[:]) != hash {
		return Stored{}, damaged("the stored bytes do not match their hash")
	}
	p, err := env.Open()
	if err != nil {
		return Stored{}, damaged("%v", err)
	}
	if p.ID != id || p.Version != version {
		return Stored{}, damaged("the stored payload is of record %s version %d", p.ID, p.Version)
	}
	return Stored{Envelope: env, Payload: p, Hash: hash, Seq: seq}, nil
}

// Query selects current versions for List. Filters combine with AND; the
// zero Query lists every current, non-deleted record.
type Query struct {
	Kind   model.Kind // "" for any kind
	Origin string     // network slug; "" for any
	// Template is either a versioned ref, "iduit-bg/3.2@2017", matching
	// audits recorded against exactly that version, or a template id without
	// a version, "iduit-bg/3.2", matching audits against any of its
	// versions. "" for any.
	Template       string
	IncludeDeleted bool // also list tombstones
	Limit          int  // at most this many; 0 or less for all
}

// List returns current versions matching q, newest id first. With a
// filter it walks an index (template, else origin, else kind), never every
// record; other filters are checked on each candidate's summary.
func (s *Store) List(q Query) ([]Stored, error) {
	if q.Kind != "" && !slices.Contains(model.Kinds, q.Kind) {
		return nil, fmt.Errorf("list records: %q is not a record kind: use audit, priority or committee-report", q.Kind)
	}
	if q.Origin != "" && !model.ValidSlug(q.Origin) {
		return nil, fmt.Errorf("list records: %q is not a network slug", q.Origin)
	}
	if strings.Count(q.Template, "@") > 1 {
		return nil, fmt.Errorf("list records: %q is not a template: use an id such as iduit-bg/3.2, or id@version such as iduit-bg/3.2@2017", q.Template)
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	var out []Stored
	err := s.db.View(func(txn *badger.Txn) error {
		src := newIDSource(txn, q)
		defer src.close()
		for q.Limit <= 0 || len(out) < q.Limit {
			id, ok := src.next()
			if !ok {
				break
			}
			cur, found, err := getCurrent(txn, id)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("%w: record %s is indexed but has no current version", ErrDamaged, id)
			}
			if (q.Kind != "" && cur.Kind != q.Kind) ||
				(q.Origin != "" && cur.Origin != q.Origin) ||
				(q.Template != "" && !templateMatches(q.Template, cur.Template)) ||
				(cur.Deleted && !q.IncludeDeleted) {
				continue
			}
			st, err := s.readVersion(txn, historyKey(id, cur.Version, cur.Hash))
			if err != nil {
				return err
			}
			out = append(out, st)
		}
		return src.err
	})
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	return out, nil
}

// idSource yields record ids in descending order from one or more reverse
// index iterators, merged.
type idSource struct {
	its  []*badger.Iterator
	pfxs [][]byte
	err  error
}

// newIDSource picks the index to walk for q: the template index (one
// iterator per matching version of the template), else the origin index,
// else the kind index, else the current-record keys themselves.
func newIDSource(txn *badger.Txn, q Query) *idSource {
	var pfxs [][]byte
	switch {
	case q.Template != "" && strings.Contains(q.Template, "@"):
		pfxs = [][]byte{[]byte(pfxTemplate + q.Template + "/")}
	case q.Template != "":
		for _, ref := range templateVersions(txn, q.Template) {
			pfxs = append(pfxs, []byte(pfxTemplate+ref+"/"))
		}
	case q.Origin != "":
		pfxs = [][]byte{[]byte(pfxOrigin + q.Origin + "/")}
	case q.Kind != "":
		pfxs = [][]byte{[]byte(pfxKind + string(q.Kind) + "/")}
	default:
		pfxs = [][]byte{[]byte(pfxRecord)}
	}
	src := &idSource{pfxs: pfxs}
	for _, pfx := range pfxs {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: pfx})
		it.Seek(append(slices.Clip(pfx), 0xff))
		src.its = append(src.its, it)
		src.skip(len(src.its) - 1)
	}
	return src
}

// templateVersions lists the refs indexed under template id tid
// ("<tid>@<version>"), seeking past each ref's entries instead of reading
// them.
func templateVersions(txn *badger.Txn, tid string) []string {
	pfx := []byte(pfxTemplate + tid + "@")
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
	defer it.Close()
	var refs []string
	for it.Seek(pfx); it.ValidForPrefix(pfx); {
		k := it.Item().Key()
		if len(k) < len(pfxTemplate)+idLen+1 {
			it.Next()
			continue
		}
		ref := string(k[len(pfxTemplate) : len(k)-idLen-1])
		refs = append(refs, ref)
		it.Seek([]byte(pfxTemplate + ref + "/\xff"))
	}
	return refs
}

// skip moves iterator i past keys that are not "<prefix><id>".
func (s *idSource) skip(i int) {
	it := s.its[i]
	for it.ValidForPrefix(s.pfxs[i]) {
		if _, ok := idFromIndexKey(it.Item().Key(), len(s.pfxs[i])); ok {
			return
		}
		it.Next()
	}
}

// next returns the greatest id not yet returned.
func (s *idSource) next() (string, bool) {
	best, bestID := -1, ""
	for i, it := range s.its {
		if !it.ValidForPrefix(s.pfxs[i]) {
			continue
		}
		id, _ := idFromIndexKey(it.Item().Key(), len(s.pfxs[i]))
		if best < 0 || id > bestID {
			best, bestID = i, id
		}
	}
	if best < 0 {
		return "", false
	}
	s.its[best].Next()
	s.skip(best)
	return bestID, true
}

func (s *idSource) close() {
	for _, it := range s.its {
		it.Close()
	}
}

// Feed returns the versions stored after seq after, in feed order, at most
// limit of them (DefaultFeedLimit if limit is 0 or less), and the seq of
// the last one returned (after itself if none). Every version this node
// stored, its own or received, current or not, has exactly one feed entry,
// and sequence numbers have no gaps. Paging costs O(limit), wherever in
// the feed it starts.
func (s *Store) Feed(after uint64, limit int) (entries []Stored, last uint64, err error) {
	last, err = s.scanFeed(after, limit, func(txn *badger.Txn, seq uint64, m feedMeta) error {
		st, err := s.readFeedVersion(txn, seq, m.hk)
		if err == nil {
			entries = append(entries, st)
		}
		return err
	}, nil)
	if err != nil {
		return nil, after, err
	}
	return entries, last, nil
}

// scanFeed calls fn for each feed entry after seq after, at most limit of
// them (DefaultFeedLimit if limit is 0 or less), in one snapshot, and
// returns the seq of the last one (after itself if none): the paging that
// Feed and FeedWhere share.
//
// end, if not nil, runs in the same transaction after the last fn, and its
// error is the scan's.
func (s *Store) scanFeed(after uint64, limit int, fn func(txn *badger.Txn, seq uint64, m feedMeta) error, end func(txn *badger.Txn) error) (last uint64, err error) {
	if limit <= 0 {
		limit = DefaultFeedLimit
	}
	if err := s.begin(); err != nil {
		return after, err
	}
	defer s.end()
	last = after
	if after == ^uint64(0) {
		return last, nil
	}
	err = s.db.View(func(txn *badger.Txn) error {
		pfx := []byte(pfxFeed)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
		defer it.Close()
		n := 0
		for it.Seek(feedKey(after + 1)); it.ValidForPrefix(pfx) && n < limit; it.Next() {
			item := it.Item()
			seq, err := parseFeedKey(item.Key())
			if err != nil {
				return fmt.Errorf("%w: %v", ErrDamaged, err)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			m, err := parseFeedValue(v)
			if err != nil {
				return fmt.Errorf("%w: entry %d: %v", ErrDamaged, seq, err)
			}
			if err := fn(txn, seq, m); err != nil {
				return err
			}
			last = seq
			n++
		}
		if end != nil {
			return end(txn)
		}
		return nil
	})
	if err != nil {
		return after, fmt.Errorf("read change feed after %d: %w", after, err)
	}
	return last, nil
}

// readFeedVersion reads the version a feed entry names and checks it was
// stored under that entry's seq.
func (s *Store) readFeedVersion(txn *badger.Txn, seq uint64, hk []byte) (Stored, error) {
	st, err := s.readVersion(txn, hk)
	if err != nil {
		return Stored{}, err
	}
	if st.Seq != seq {
		return Stored{}, fmt.Errorf("%w: feed entry %d points at a version stored as %d", ErrDamaged, seq, st.Seq)
	}
	return st, nil
}

// Holds reports whether the store holds the version of record id with
// this number and hash (as a whole envelope or as a stub).
func (s *Store) Holds(id string, version uint64, hash string) (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	defer s.end()
	held := false
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(historyKey(id, version, hash))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		held = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("look up record %s version %d: %w", id, version, err)
	}
	return held, nil
}

// Known reports, in one read, whether the store holds the version of
// record id with this number and hash (as Holds), and the version number
// of the record's current version (0 if the store holds none of it).
func (s *Store) Known(id string, version uint64, hash string) (held bool, current uint64, err error) {
	if err := s.begin(); err != nil {
		return false, 0, err
	}
	defer s.end()
	err = s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(historyKey(id, version, hash))
		switch {
		case err == nil:
			held = true
			return nil // held: its current version is not needed
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		cur, ok, err := getCurrent(txn, id)
		if ok {
			current = cur.Version
		}
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("look up record %s version %d: %w", id, version, err)
	}
	return held, current, nil
}
