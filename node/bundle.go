package node

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/ssh"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/durable"
	"github.com/inpud/cairn/node/registry"
	cairnsync "github.com/inpud/cairn/sync"
)

// An offline bundle carries records to one network on a USB stick or
// through a messenger, for places with no usable internet. Its layout:
//
//	cairn-bundle/1\n
//	header JSON\n
//	base64 Ed25519 signature\n
//	body
//
// The sending node signs (with its node key) the magic line, the header
// line and the body; the recipient checks that signature against the
// registry before it opens anything. A records bundle's body is age
// ciphertext (filippo.io/age, to the ssh-ed25519 recipients derived from
// every current node key of the recipient network, so any of its nodes can
// open it) of the exact signed envelopes, each uvarint length-prefixed.
// An acknowledgement has an empty body: it only says, signed, "network
// From holds everything from node Node up to seq Upto".
const BundleMagic = "cairn-bundle/1"

// Bundle kinds.
const (
	BundleRecords = "records"
	BundleAck     = "ack"
)

// maxBundleBody bounds what an import reads (and a bundle writes).
const maxBundleBody = 512 << 20

// BundleHeader is the signed, plaintext part of a bundle.
type BundleHeader struct {
	Kind    string `json:"kind"`
	From    string `json:"from"`   // sending network
	To      string `json:"to"`     // recipient network
	Sender  string `json:"sender"` // peer ID of the signing node
	Node    string `json:"node"`   // whose feed the seqs number: the sender for records, the acknowledged node for an ack
	Feed    string `json:"feed"`   // that node's feed id (a restored node numbers anew)
	Since   uint64 `json:"since"`  // records: versions after this seq
	Upto    uint64 `json:"upto"`   // last feed seq covered
	Count   int    `json:"count"`  // records in the body
	Created int64  `json:"created"`
}

// BundleResult is what writing or importing a bundle did.
type BundleResult struct {
	Header     BundleHeader `json:"header"`
	Stored     int          `json:"stored"`
	Duplicates int          `json:"duplicates"`
	// Older counts versions passed over: this node holds a newer one.
	Older int `json:"older"`
	// Ack is the acknowledgement to carry back, after importing records.
	Ack []byte `json:"-"`
	// AckRecorded: after importing an acknowledgement, whether it moved
	// the next bundle's start.
	AckRecorded bool `json:"ack_recorded,omitempty"`
	// Gap: the acknowledgement starts after the last one recorded (an
	// earlier bundle's acknowledgement has not come back yet).
	Gap bool `json:"gap,omitempty"`
	// Acked is, after importing an acknowledgement, the seq the next
	// bundle to its network starts after.
	Acked uint64 `json:"acked"`
}

// ErrBundle marks bad bundle input: the file, not the node, is at fault.
// Every such error also matches model.ErrInvalid, so the API answers it
// as bad input (400) with its one sentence.
var ErrBundle = errors.New("bad bundle")

type bundleError struct{ msg string }

func (e *bundleError) Error() string { return e.msg }

func (e *bundleError) Is(target error) bool { return target == ErrBundle || target == model.ErrInvalid }

func bundleErr(format string, args ...any) error {
	return &bundleError{msg: fmt.Sprintf(format, args...)}
}

// IsBundle reports whether b starts like a bundle (and not, say, an
// NDJSON export).
func IsBundle(b []byte) bool {
	return bytes.HasPrefix(b, []byte(BundleMagic+"\n"))
}

// acksFile keeps, per recipient network, the last seq it acknowledged.
const acksFile = "bundle-acks.json"

var acksMu sync.Mutex

type bundleAck struct {
	Seq  uint64 `json:"seq"`
	Feed string `json:"feed"`
}

func (n *Node) readAcks() (map[string]bundleAck, error) {
	acks := map[string]bundleAck{}
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, acksFile))
	if errors.Is(err, os.ErrNotExist) {
		return acks, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read bundle acknowledgements: %w", err)
	}
	if err := json.Unmarshal(b, &acks); err != nil {
		return nil, fmt.Errorf("bundle acknowledgements %s are damaged: %w", filepath.Join(n.cfg.DataDir, acksFile), err)
	}
	return acks, nil
}

// AckedSeq is the last seq of this node's feed network slug acknowledged
// (0 if none, or if the feed was started anew since).
func (n *Node) AckedSeq(slug string) (uint64, error) {
	acksMu.Lock()
	defer acksMu.Unlock()
	acks, err := n.readAcks()
	if err != nil {
		return 0, err
	}
	a := acks[slug]
	if a.Feed != n.store.FeedID() {
		return 0, nil
	}
	return a.Seq, nil
}

// WriteBundle writes to w a bundle for network to of the versions from
// this node's feed after since that network may see (exactly what the pull
// server would send it). since < 0 means: after the last acknowledged seq.
func (n *Node) WriteBundle(w io.Writer, to string, since int64) (BundleHeader, error) {
	st := n.fed.State()
	net, ok := st.Network(to)
	if !ok {
		return BundleHeader{}, bundleErr("network %q is not in the registry; see the members with: cairn network list", to)
	}
	if to == n.profile.Slug {
		return BundleHeader{}, bundleErr("%q is this node's own network; bundle to another member network", to)
	}
	var recips []age.Recipient
	for _, k := range st.NodeKeys(to) {
		if k.Revoked {
			continue
		}
		r, err := ageRecipient(k.PeerID)
		if err != nil {
			return BundleHeader{}, fmt.Errorf("node key %s of %s: %w", k.PeerID, to, err)
		}
		recips = append(recips, r)
	}
	if len(recips) == 0 {
		return BundleHeader{}, bundleErr("network %q has no current node key to encrypt to", to)
	}
	after := uint64(0)
	if since >= 0 {
		after = uint64(since)
	} else {
		var err error
		if after, err = n.AckedSeq(to); err != nil {
			return BundleHeader{}, err
		}
	}
	reader := model.Reader{Network: net.Slug, Region: net.Region, Member: true}
	want := func(origin string, aud model.Audience) bool {
		return origin != reader.Network && aud.Admits(reader) // sync/pull.go sendable
	}
	var plain bytes.Buffer
	h := BundleHeader{Kind: BundleRecords, From: n.profile.Slug, To: to, Sender: n.ID(), Node: n.ID(),
		Feed: n.store.FeedID(), Since: after, Upto: after, Created: n.cfg.Now().UnixMilli()}
	const page = 1000
	for range maxBundleBody / page { // bounded: each page moves forwards
		entries, last, err := n.store.FeedWhere(h.Upto, page, want)
		if err != nil {
			return BundleHeader{}, fmt.Errorf("read the change feed: %w", err)
		}
		for _, e := range entries {
			if len(e.Envelope.Payload) == 0 || !want(e.Origin, e.Audience) {
				continue // not for to, or taken back: no signed bytes to send
			}
			b, _ := e.Envelope.MarshalBinary()
			plain.Write(binary.AppendUvarint(nil, uint64(len(b))))
			plain.Write(b)
			h.Count++
			if plain.Len() > maxBundleBody {
				return BundleHeader{}, fmt.Errorf("the bundle would pass %d MiB; send it in parts with --since", maxBundleBody>>20)
			}
		}
		if last <= h.Upto {
			break
		}
		h.Upto = last
		if len(entries) < page {
			break
		}
	}
	var body bytes.Buffer
	enc, err := age.Encrypt(&body, recips...)
	if err != nil {
		return BundleHeader{}, fmt.Errorf("encrypt the bundle: %w", err)
	}
	if _, err := enc.Write(plain.Bytes()); err != nil {
		return BundleHeader{}, fmt.Errorf("encrypt the bundle: %w", err)
	}
	if err := enc.Close(); err != nil {
		return BundleHeader{}, fmt.Errorf("encrypt the bundle: %w", err)
	}
	out, err := n.signBundle(h, body.Bytes())
	if err != nil {
		return BundleHeader{}, err
	}
	if _, err := w.Write(out); err != nil {
		return BundleHeader{}, fmt.Errorf("write the bundle: %w", err)
	}
	return h, nil
}

func ageRecipient(peerID string) (age.Recipient, error) {
	pub, err := AuthorKey(peerID)
	if err != nil {
		return nil, err
	}
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return agessh.NewEd25519Recipient(sk)
}

func (n *Node) signBundle(h BundleHeader, body []byte) ([]byte, error) {
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode the bundle header: %w", err)
	}
	key, err := n.id.SigningKey()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteString(BundleMagic + "\n")
	out.Write(hj)
	out.WriteByte('\n')
	sig := ed25519.Sign(key, signedBundleBytes(hj, body))
	out.WriteString(base64.StdEncoding.EncodeToString(sig))
	out.WriteByte('\n')
	out.Write(body)
	return out.Bytes(), nil
}

func signedBundleBytes(header, body []byte) []byte {
	m := make([]byte, 0, len(BundleMagic)+len(header)+len(body)+2)
	m = append(m, BundleMagic+"\n"...)
	m = append(m, header...)
	m = append(m, '\n')
	return append(m, body...)
}

// openBundle parses b and checks its signature and addressing against the
// registry. Nothing is opened or stored before it passes.
func (n *Node) openBundle(b []byte) (BundleHeader, []byte, error) {
	var h BundleHeader
	r := bufio.NewReader(bytes.NewReader(b))
	line := func() ([]byte, error) {
		l, err := r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		return l[:len(l)-1], nil
	}
	magic, err := line()
	if err != nil || string(magic) != BundleMagic {
		return h, nil, bundleErr("the file is not a Cairn bundle (its first line is not %q)", BundleMagic)
	}
	hj, err := line()
	if err != nil {
		return h, nil, bundleErr("the bundle is truncated (it ends inside its header); copy it again from the sender")
	}
	if err := json.Unmarshal(hj, &h); err != nil {
		return h, nil, bundleErr("the bundle's header is damaged (%v); copy it again from the sender", err)
	}
	sl, err := line()
	if err != nil {
		return h, nil, bundleErr("the bundle is truncated (it ends before its signature); copy it again from the sender")
	}
	sig, err := base64.StdEncoding.DecodeString(string(sl))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return h, nil, bundleErr("the bundle's signature line is damaged; copy it again from the sender")
	}
	body := b[len(magic)+len(hj)+len(sl)+3:]
	if h.To != n.profile.Slug {
		return h, nil, bundleErr("this bundle is addressed to network %q, not to this node's network %q; give it to a node of %q", h.To, n.profile.Slug, h.To)
	}
	st := n.fed.State()
	if err := checkBundleSender(st, h); err != nil {
		return h, nil, err
	}
	pub, err := AuthorKey(h.Sender)
	if err != nil {
		return h, nil, bundleErr("the bundle names no valid sender key: %v", err)
	}
	if !ed25519.Verify(pub, signedBundleBytes(hj, body), sig) {
		return h, nil, bundleErr("the bundle is truncated or was changed after %s signed it (its signature does not match); copy it again from the sender", h.From)
	}
	return h, body, nil
}

// checkBundleSender: the signing key must be a current key of the sending
// network, and that network active.
func checkBundleSender(st *registry.State, h BundleHeader) error {
	key, ok := st.Node(h.Sender)
	switch {
	case !ok || key.Network != h.From:
		return bundleErr("the bundle is signed by node %s, which is not a key of network %q in this node's registry", h.Sender, h.From)
	case key.Revoked:
		return bundleErr("the bundle is signed by node %s, whose key %q revoked; ask a current node of %q for a new bundle", h.Sender, h.From, h.From)
	}
	if net, ok := st.Network(h.From); ok && net.Status != registry.StatusActive {
		return bundleErr("the bundle comes from network %q, which is %s in the registry", h.From, net.Status)
	}
	return nil
}

// ImportBundle checks, opens and stores a records bundle (returning the
// acknowledgement to carry back), or records an acknowledgement. Any
// refused envelope refuses the whole bundle: nothing is stored.
func (n *Node) ImportBundle(b []byte) (BundleResult, error) {
	h, body, err := n.openBundle(b)
	if err != nil {
		return BundleResult{}, err
	}
	switch h.Kind {
	case BundleAck:
		return n.importAck(h, body)
	case BundleRecords:
	default:
		return BundleResult{}, bundleErr("unknown bundle kind %q (this program reads %q and %q)", h.Kind, BundleRecords, BundleAck)
	}
	if n.repl == nil {
		return BundleResult{}, errors.New("the node is not started; start it before importing a bundle")
	}
	ident, err := n.ageIdentity()
	if err != nil {
		return BundleResult{}, err
	}
	dec, err := age.Decrypt(bytes.NewReader(body), ident)
	if err != nil {
		return BundleResult{}, bundleErr("this node cannot open the bundle (it was not encrypted to this node's key, or is damaged): %v", err)
	}
	plain, err := io.ReadAll(io.LimitReader(dec, maxBundleBody+1))
	if err != nil {
		return BundleResult{}, bundleErr("the bundle's contents are damaged: %v", err)
	}
	var envs []model.Envelope
	for len(plain) > 0 {
		l, k := binary.Uvarint(plain)
		if k <= 0 || l > uint64(len(plain)-k) {
			return BundleResult{}, bundleErr("the bundle's contents are damaged (a record's length is wrong)")
		}
		var e model.Envelope
		if err := e.UnmarshalBinary(plain[k : k+int(l)]); err != nil {
			return BundleResult{}, bundleErr("the bundle's contents are damaged: %v", err)
		}
		envs = append(envs, e)
		plain = plain[k+int(l):]
	}
	if len(envs) != h.Count {
		return BundleResult{}, bundleErr("the bundle holds %d records, its header says %d", len(envs), h.Count)
	}
	from, err := peer.Decode(h.Sender)
	if err != nil {
		return BundleResult{}, bundleErr("the bundle names no valid sender: %v", err)
	}
	// The receiver's checks, as sync runs them: signature, time, body,
	// author's key in the registry, audience, stale versions.
	sink := recordSink{n: n, r: n.repl, offline: true}
	commit, c, err := sink.Check(from, envs)
	if err != nil {
		return BundleResult{}, bundleErr("the bundle holds a record this node refuses (%v); nothing was stored", err)
	}
	// A stale version (older than one this node holds, say from an
	// earlier bundle imported later) is not refused: it is passed over,
	// as sync passes it over, and the bundle still counts as held.
	if bad := c.Rejected - c.Reasons[cairnsync.ReasonStale]; bad > 0 {
		return BundleResult{}, bundleErr("the bundle holds %d records this node refuses (%s); nothing was stored", bad, reasons(c))
	}
	cc, err := commit()
	c.Add(cc)
	if err != nil {
		return BundleResult{}, err
	}
	ack := BundleHeader{Kind: BundleAck, From: n.profile.Slug, To: h.From, Sender: n.ID(), Node: h.Node,
		Feed: h.Feed, Since: h.Since, Upto: h.Upto, Count: len(envs), Created: n.cfg.Now().UnixMilli()}
	ab, err := n.signBundle(ack, nil)
	if err != nil {
		return BundleResult{}, err
	}
	return BundleResult{Header: h, Stored: c.Stored, Duplicates: c.Duplicates, Older: c.Reasons[cairnsync.ReasonStale], Ack: ab}, nil
}

func reasons(c cairnsync.Counts) string {
	b, _ := json.Marshal(c.Reasons)
	return string(b)
}

func (n *Node) ageIdentity() (age.Identity, error) {
	key, err := n.id.SigningKey()
	if err != nil {
		return nil, err
	}
	return agessh.NewEd25519Identity(key)
}

// importAck records that network h.From holds this node's feed up to
// h.Upto; the next bundle to it starts there.
func (n *Node) importAck(h BundleHeader, body []byte) (BundleResult, error) {
	if len(body) != 0 {
		return BundleResult{}, bundleErr("the acknowledgement carries unexpected contents")
	}
	if h.Node != n.ID() {
		return BundleResult{}, bundleErr("this acknowledgement is for node %s, not this node (%s); import it there", h.Node, n.ID())
	}
	res := BundleResult{Header: h}
	acksMu.Lock()
	defer acksMu.Unlock()
	acks, err := n.readAcks()
	if err != nil {
		return res, err
	}
	cur := acks[h.From]
	if cur.Feed != n.store.FeedID() {
		cur = bundleAck{Feed: n.store.FeedID()} // a feed started anew: nothing acknowledged of it yet
	}
	switch {
	case h.Feed != cur.Feed, h.Upto <= cur.Seq:
		res.Acked = cur.Seq
		return res, nil // for a feed this node no longer numbers from, or older than the one recorded
	case h.Since > cur.Seq:
		// It acknowledges (Since, Upto], but (cur, Since] was never
		// acknowledged: the network may not hold it, so the next bundle
		// still starts after cur.
		res.Gap, res.Acked = true, cur.Seq
		return res, nil
	}
	acks[h.From] = bundleAck{Seq: h.Upto, Feed: h.Feed}
	b, err := json.Marshal(acks)
	if err != nil {
		return res, err
	}
	if err := durable.WriteFile(filepath.Join(n.cfg.DataDir, acksFile), b, 0o600); err != nil {
		return res, fmt.Errorf("save the acknowledgement: %w", err)
	}
	res.AckRecorded, res.Acked = true, h.Upto
	return res, nil
}

// BundleFile is WriteBundle for the API: the bundle's bytes and header.
func (n *Node) BundleFile(to string, since int64) ([]byte, any, error) {
	var buf bytes.Buffer
	h, err := n.WriteBundle(&buf, to, since)
	if err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), h, nil
}

// ImportBundleFile is ImportBundle for the API: the acknowledgement to
// carry back (nil after importing one) and what the import did.
func (n *Node) ImportBundleFile(b []byte) ([]byte, any, error) {
	res, err := n.ImportBundle(b)
	if err != nil {
		return nil, nil, err
	}
	return res.Ack, res, nil
}
