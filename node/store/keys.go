package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	badger "github.com/dgraph-io/badger"
	"hash/crc32"
	"strconv"
	"strings"

	"github.com/inpud/cairn/model"
)

// Key prefixes. doc.go describes the layout as a whole.
const (
	pfxRecord     = "/r/"          // /r/<id> → summary of the current version (see current)
	pfxHistory    = "/h/"          // /h/<id>/<version %020d>/<hash> → seq (8 bytes) + envelope
	pfxFeed       = "/c/"          // /c/<seq %016x> → the history key of the version stored, with its origin and audience (feedValue)
	pfxCheckpoint = "/k/"          // /k/<peer> → seq (8 bytes)
	pfxKind       = "/i/kind/"     // /i/kind/<kind>/<id> → empty
	pfxOrigin     = "/i/origin/"   // /i/origin/<origin>/<id> → empty
	pfxTemplate   = "/i/template/" // /i/template/<ref>/<id> → empty
	pfxCount      = "/m/count/"    // /m/count/<kind> → count (8 bytes)
	pfxReceipt    = "/d/"          // /d/<id>/<network> → what that network holds of an own record (receipts.go)
	pfxCustody    = "/u/"          // /u/... custody copies this node keeps for other networks (custody.go)

	keyFormat = "/m/format" // store format version, "1"
	keyHead   = "/m/head"   // last assigned seq (8 bytes)
	keyMaxHLC = "/m/maxhlc" // highest HLC of any stored version (8 bytes)
)

// idLen is the length of a record id (a ULID, model.ValidateID). Index keys
// end in "/<id>", so a fixed length lets a key be split from the right even
// when the indexed value (a template ref) itself holds a '/'.
const idLen = 26

// hashLen is the length of a version hash in hex (model.Envelope.Hash).
const hashLen = 64

// formatVersion is the store format this code reads and writes. A store
// written by a later format is refused rather than guessed at.
const formatVersion = "1"

func recordKey(id string) []byte { return []byte(pfxRecord + id) }

func historyPrefix(id string) []byte { return []byte(pfxHistory + id + "/") }

// The keys below are built by hand rather than with fmt: historyKey and
// feedKey run several times for every record stored or sent, and fmt's
// formatting showed in the sync's CPU profile. They are byte for byte what
// the fmt forms in their comments give (TestKeysMatchTheirFormats).

// versionPrefix is fmt "%s%s/%020d/" of pfxHistory, id, version.
func versionPrefix(id string, version uint64) []byte {
	b := make([]byte, 0, len(pfxHistory)+len(id)+22)
	b = append(append(b, pfxHistory...), id...)
	b = appendDec20(append(b, '/'), version)
	return append(b, '/')
}

// historyKey is fmt "%s%s/%020d/%s" of pfxHistory, id, version, hash.
func historyKey(id string, version uint64, hash string) []byte {
	b := make([]byte, 0, len(pfxHistory)+len(id)+22+len(hash))
	b = append(append(b, pfxHistory...), id...)
	b = appendDec20(append(b, '/'), version)
	return append(append(b, '/'), hash...)
}

// appendDec20 appends v in decimal, zero-padded to 20 digits (fmt %020d;
// a uint64 has at most 20).
func appendDec20(b []byte, v uint64) []byte {
	var d [20]byte
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:]...)
}

// parseHistoryKey splits /h/<id>/<version>/<hash>.
func parseHistoryKey(k []byte) (id string, version uint64, hash string, err error) {
	s := string(k)
	rest, ok := strings.CutPrefix(s, pfxHistory)
	if !ok || len(rest) != idLen+1+20+1+hashLen || rest[idLen] != '/' || rest[idLen+21] != '/' {
		return "", 0, "", fmt.Errorf("history key %q is not in the form /h/<id>/<version>/<hash>", s)
	}
	version, err = strconv.ParseUint(rest[idLen+1:idLen+21], 10, 64)
	if err != nil {
		return "", 0, "", fmt.Errorf("history key %q has a bad version: %w", s, err)
	}
	return rest[:idLen], version, rest[idLen+22:], nil
}

// feedKey is fmt "%s%016x" of pfxFeed, seq.
func feedKey(seq uint64) []byte {
	const hex = "0123456789abcdef"
	b := make([]byte, len(pfxFeed)+16)
	copy(b, pfxFeed)
	for i := len(b) - 1; i >= len(pfxFeed); i-- {
		b[i] = hex[seq&0xf]
		seq >>= 4
	}
	return b
}

func parseFeedKey(k []byte) (uint64, error) {
	s, ok := strings.CutPrefix(string(k), pfxFeed)
	if !ok || len(s) != 16 {
		return 0, fmt.Errorf("feed key %q is not in the form /c/<16 hex digits>", k)
	}
	return strconv.ParseUint(s, 16, 64)
}

func checkpointKey(peer string) []byte { return []byte(pfxCheckpoint + peer) }

func countKey(k model.Kind) []byte { return []byte(pfxCount + string(k)) }

func kindIndexKey(k model.Kind, id string) []byte { return []byte(pfxKind + string(k) + "/" + id) }

func originIndexKey(origin, id string) []byte { return []byte(pfxOrigin + origin + "/" + id) }

func templateIndexKey(ref, id string) []byte { return []byte(pfxTemplate + ref + "/" + id) }

// idFromIndexKey returns the id at the end of an index key whose prefix
// (everything before "/<id>") is exactly pfx.
func idFromIndexKey(k []byte, pfxLen int) (string, bool) {
	if len(k) != pfxLen+idLen {
		return "", false
	}
	return string(k[pfxLen:]), true
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func readU64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%d bytes where an 8-byte number was expected", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// indexableTemplate returns the template ref to index an audit under, or ""
// when ref is not of the form "<template id>@<version>" that model.Template
// produces (no '@' or '/' after the '@', no control characters). Refusing
// odd refs keeps index keys unambiguous; the node validates audits against
// registered templates before storing them, so a real audit always passes.
func indexableTemplate(ref string) string {
	at := strings.IndexByte(ref, '@')
	if at <= 0 || at == len(ref)-1 || len(ref) > 200 || strings.ContainsAny(ref[at+1:], "@/") {
		return ""
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] < 0x21 || ref[i] == 0x7f {
			return ""
		}
	}
	return ref
}

// templateMatches reports whether an indexed ref matches a query: a query
// with '@' names one version exactly; one without names a template id and
// matches every version of it ("iduit-bg/3.2" matches "iduit-bg/3.2@2017").
func templateMatches(query, ref string) bool {
	if query == "" {
		return true
	}
	if strings.Contains(query, "@") {
		return ref == query
	}
	return strings.HasPrefix(ref, query+"@")
}

// current summarises the current version of a record: the value of /r/<id>.
// It points at the version's history key (version + hash) and carries what
// conflict resolution (model.Wins), index upkeep and List's filters need, so
// none of them has to decode the envelope's JSON.
type current struct {
	Version  uint64
	HLC      model.HLC
	Hash     string // hex, as model.Envelope.Hash
	Deleted  bool
	Kind     model.Kind
	Origin   string
	Author   string
	Template string // the ref it is indexed under; "" for none
}

const currentFormat = 1

func (c current) marshal() ([]byte, error) {
	h, err := hex.DecodeString(c.Hash)
	if err != nil || len(h) != 32 {
		return nil, fmt.Errorf("version hash %q is not 64 hex digits", c.Hash)
	}
	b := make([]byte, 0, 64+len(c.Kind)+len(c.Origin)+len(c.Author)+len(c.Template))
	b = append(b, currentFormat)
	b = binary.AppendUvarint(b, c.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(c.HLC))
	b = append(b, h...)
	var flags byte
	if c.Deleted {
		flags |= 1
	}
	b = append(b, flags)
	for _, s := range []string{string(c.Kind), c.Origin, c.Author, c.Template} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

var errBadCurrent = errors.New("current-version entry is malformed")

func (c *current) unmarshal(b []byte) error {
	if len(b) < 1 || b[0] != currentFormat {
		return errBadCurrent
	}
	b = b[1:]
	v, n := binary.Uvarint(b)
	if n <= 0 || len(b) < n+8+32+1 {
		return errBadCurrent
	}
	b = b[n:]
	c.Version = v
	c.HLC = model.HLC(binary.BigEndian.Uint64(b))
	c.Hash = hex.EncodeToString(b[8:40])
	c.Deleted = b[40]&1 != 0
	b = b[41:]
	var strs [4]string
	for i := range strs {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return errBadCurrent
		}
		strs[i] = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	if len(b) != 0 {
		return errBadCurrent
	}
	c.Kind, c.Origin, c.Author, c.Template = model.Kind(strs[0]), strs[1], strs[2], strs[3]
	return nil
}

// payload returns the fields of the version that model.Wins compares.
func (c current) payload() model.Payload {
	return model.Payload{Version: c.Version, HLC: c.HLC, Author: c.Author}
}

// indexKeys lists the index keys of a current version.
func (c current) indexKeys(id string) [][]byte {
	keys := [][]byte{kindIndexKey(c.Kind, id), originIndexKey(c.Origin, id)}
	if c.Template != "" {
		keys = append(keys, templateIndexKey(c.Template, id))
	}
	return keys
}

// A feed entry's value (/c/<seq>) names the history key of the version
// stored. Stores written before feedMetaMark hold only that key (it starts
// with '/'); newer entries start with feedMetaMark and also carry the
// version's origin and audience, so a pull server can decide whom an entry
// may go to without reading or decoding the envelope:
//
//	feedMetaMark, CRC-32C (4 bytes, big-endian) of the rest, then
//	uvarint len + history key, uvarint len + origin,
//	uvarint count of audience entries, each uvarint len + entry
//
// The checksum makes a damaged entry an error rather than a record sent to
// readers its origin did not choose.
const feedMetaMark = 0x01

// feedMeta is what a feed entry says of the version it names.
type feedMeta struct {
	hk       []byte // history key
	origin   string
	audience model.Audience
	full     bool // origin and audience are set (false: an older entry, only hk)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func feedValue(hk []byte, origin string, aud model.Audience) []byte {
	n := 5 + binary.MaxVarintLen64*2 + len(hk) + len(origin) + 1
	for _, e := range aud {
		n += binary.MaxVarintLen64 + len(e)
	}
	b := make([]byte, 5, n)
	b[0] = feedMetaMark
	b = binary.AppendUvarint(b, uint64(len(hk)))
	b = append(b, hk...)
	b = binary.AppendUvarint(b, uint64(len(origin)))
	b = append(b, origin...)
	b = binary.AppendUvarint(b, uint64(len(aud)))
	for _, e := range aud {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	binary.BigEndian.PutUint32(b[1:5], crc32.Checksum(b[5:], castagnoli))
	return b
}

// parseFeedValue reads a feed entry's value, of either form. The history
// key aliases v.
func parseFeedValue(v []byte) (feedMeta, error) {
	if len(v) > 0 && v[0] == '/' {
		return feedMeta{hk: v}, nil // before feedMetaMark: the history key alone
	}
	bad := func(what string) (feedMeta, error) {
		return feedMeta{}, fmt.Errorf("feed entry value is malformed: %s", what)
	}
	if len(v) < 5 || v[0] != feedMetaMark {
		return bad("unknown form")
	}
	if binary.BigEndian.Uint32(v[1:5]) != crc32.Checksum(v[5:], castagnoli) {
		return bad("its checksum does not match")
	}
	b := v[5:]
	next := func() ([]byte, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, false
		}
		s := b[k : k+int(l)]
		b = b[k+int(l):]
		return s, true
	}
	hk, ok := next()
	if !ok {
		return bad("history key")
	}
	origin, ok := next()
	if !ok {
		return bad("origin")
	}
	count, k := binary.Uvarint(b)
	if k <= 0 || count > uint64(len(b)) {
		return bad("audience")
	}
	b = b[k:]
	aud := make(model.Audience, 0, count)
	for range count {
		e, ok := next()
		if !ok {
			return bad("audience entry")
		}
		aud = append(aud, string(e))
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return feedMeta{hk: hk, origin: string(origin), audience: aud, full: true}, nil
}

// metaEnvelope, as the badger user-meta byte of a history entry (/h/),
// says that its value holds the signed envelope, not a stub: PutOpened
// sets it when it stores a version whole. Anyone may tell a held version
// from a taken-back one by it without reading the value (a read from the
// value log). It is only ever a promise that the value is whole: every
// other write of a history entry (taking a body back, which rewrites it
// as a stub, and whatever stores wrote before this byte existed) leaves
// it 0, which says nothing, and readers then read the value to find out.
const metaEnvelope = 0x01

// historyEntry is the badger entry for history key hk with value val,
// marked metaEnvelope if whole (val holds the envelope, not a stub).
func historyEntry(hk, val []byte, whole bool) *badger.Entry {
	e := badger.NewEntry(hk, val)
	if whole {
		e = e.WithMeta(metaEnvelope)
	}
	return e
}
