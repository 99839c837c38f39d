package secrets

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
	"golang.org/x/crypto/chacha20poly1305"
)

// MaxShares is the most shares one set may have.
const MaxShares = 255

// Errors of combining shares; callers add which files.
var (
	// ErrTooFewShares: fewer different shares than the set's threshold.
	ErrTooFewShares = errors.New("too few shares")
	// ErrMixedSets: the shares come from different sets.
	ErrMixedSets = errors.New("the shares come from different sets")
	// ErrDuplicateShare: one share was given twice.
	ErrDuplicateShare = errors.New("the same share was given twice")
)

const (
	groupName = "ristretto255"
	hkdfInfo  = "cairn key share, version 1: sealing key"
)

// setHeader is what every share of one set has in common. Its JSON is the
// AEAD's additional data.
type setHeader struct {
	Owner
	Set        string   `json:"set"`
	Threshold  int      `json:"threshold"`
	Shares     int      `json:"shares"`
	Group      string   `json:"group"`
	Commitment [][]byte `json:"commitment"`
}

// shareLine is the header line of a share file.
type shareLine struct {
	setHeader
	Cipher string `json:"cipher"`
	Nonce  []byte `json:"nonce"`
	Sealed []byte `json:"sealed"`
	Index  int    `json:"index"`
	Value  []byte `json:"value"`
}

// Share is one share read from a file and checked on its own: its checksum
// and its place in the set's commitment.
type Share struct {
	// Name is how errors call the share (its file name); set by the caller.
	Name      string
	Owner     Owner
	Set       string
	Index     int
	Threshold int
	Shares    int
	line      shareLine
	ad        []byte
}

// CheckCounts says what is wrong with n shares of threshold k, if anything.
func CheckCounts(n, k int) error {
	switch {
	case n < 2 || n > MaxShares:
		return fmt.Errorf("the number of shares must be from 2 to %d, not %d", MaxShares, n)
	case k < 2:
		return fmt.Errorf("the threshold must be at least 2, not %d: with 1, every share holder alone has the whole key", k)
	case k > n:
		return fmt.Errorf("the threshold %d is more than the %d shares: nobody could ever combine them", k, n)
	}
	return nil
}

// Split splits secret into n share files, any k of which Combine opens.
func Split(secret []byte, owner Owner, n, k int) ([][]byte, error) {
	if err := CheckCounts(n, k); err != nil {
		return nil, err
	}
	g := group.Ristretto255
	s := g.RandomNonZeroScalar(rand.Reader)
	ss := secretsharing.New(rand.Reader, uint(k-1), s)
	set := make([]byte, 8)
	if _, err := rand.Read(set); err != nil {
		return nil, fmt.Errorf("read random set id: %w", err)
	}
	h := setHeader{Owner: owner, Set: hex.EncodeToString(set), Threshold: k, Shares: n, Group: groupName}
	for _, c := range ss.CommitSecret() {
		b, err := c.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode commitment: %w", err)
		}
		h.Commitment = append(h.Commitment, b)
	}
	ad, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode share header: %w", err)
	}
	aead, err := sealer(s)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("read random nonce: %w", err)
	}
	sealed := aead.Seal(nil, nonce, secret, ad)
	var files [][]byte
	for i, sh := range ss.Share(uint(n)) {
		v, err := sh.Value.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode share: %w", err)
		}
		line, err := json.Marshal(shareLine{setHeader: h, Cipher: cipherName, Nonce: nonce, Sealed: sealed, Index: i + 1, Value: v})
		if err != nil {
			return nil, fmt.Errorf("encode share: %w", err)
		}
		f := parsed{magic: shareMagic, header: string(line)}
		var b strings.Builder
		b.WriteString(shareMagic + "\n")
		fmt.Fprintf(&b, "# Share %d of %d of the keys of the Cairn node of network %s (peer %s).\n", i+1, n, owner.Network, owner.PeerID)
		fmt.Fprintf(&b, "# Any %d different shares of set %s together open the keys; fewer reveal nothing.\n", k, h.Set)
		b.WriteString("# Keep it safe and apart from the other shares. Check it with: cairn key check FILE\n")
		b.WriteString(f.header + "\n")
		b.WriteString("checksum " + checksum(f) + "\n")
		files = append(files, []byte(b.String()))
	}
	return files, nil
}

// sealer is the AEAD keyed by the shared scalar.
func sealer(s group.Scalar) (interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}, error) {
	sb, err := s.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode shared scalar: %w", err)
	}
	key, err := hkdf.Key(sha256.New, sb, nil, hkdfInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	return chacha20poly1305.NewX(key)
}

func checksum(f parsed) string {
	sum := sha256.Sum256(f.signed())
	return hex.EncodeToString(sum[:])
}

// ParseShare reads one share file and checks it on its own: its format, its
// checksum, and that its value lies on the set's committed polynomial (so a
// changed share is caught here, not as a wrong key after combining).
func ParseShare(file []byte) (Share, error) {
	f, err := parse(file, shareMagic)
	if err != nil {
		return Share{}, err
	}
	if len(f.rest) != 1 || f.rest[0] != "checksum "+checksum(f) {
		return Share{}, ErrDamaged
	}
	var l shareLine
	if err := json.Unmarshal([]byte(f.header), &l); err != nil {
		return Share{}, ErrDamaged
	}
	if l.Group != groupName || l.Cipher != cipherName || CheckCounts(l.Shares, l.Threshold) != nil ||
		l.Index < 1 || l.Index > l.Shares || len(l.Commitment) != l.Threshold ||
		len(l.Nonce) != chacha20poly1305.NonceSizeX || len(l.Set) != 16 {
		return Share{}, ErrDamaged
	}
	sh, err := l.share()
	if err != nil {
		return Share{}, ErrDamaged
	}
	comm, err := l.commitment()
	if err != nil || !secretsharing.Verify(uint(l.Threshold-1), sh, comm) {
		return Share{}, ErrDamaged
	}
	ad, err := json.Marshal(l.setHeader)
	if err != nil {
		return Share{}, ErrDamaged
	}
	return Share{Owner: l.Owner, Set: l.Set, Index: l.Index, Threshold: l.Threshold, Shares: l.Shares, line: l, ad: ad}, nil
}

func (l shareLine) share() (secretsharing.Share, error) {
	g := group.Ristretto255
	v := g.NewScalar()
	if err := v.UnmarshalBinary(l.Value); err != nil {
		return secretsharing.Share{}, err
	}
	return secretsharing.Share{ID: g.NewScalar().SetUint64(uint64(l.Index)), Value: v}, nil
}

func (l shareLine) commitment() (secretsharing.SecretCommitment, error) {
	var c secretsharing.SecretCommitment
	for _, b := range l.Commitment {
		e := group.Ristretto255.NewElement()
		if err := e.UnmarshalBinary(b); err != nil {
			return nil, err
		}
		c = append(c, e)
	}
	return c, nil
}

// Combine opens the secret from shares of one set: at least its threshold
// of different shares. It names the shares (by Name) in its errors.
func Combine(shares []Share) (Owner, []byte, error) {
	if len(shares) == 0 {
		return Owner{}, nil, fmt.Errorf("%w: no share was given", ErrTooFewShares)
	}
	first := shares[0]
	byIndex := map[int]Share{}
	var points []secretsharing.Share
	for _, s := range shares {
		if s.Set != first.Set {
			return Owner{}, nil, fmt.Errorf("%w: %s is of set %s (network %s) and %s of set %s (network %s); give shares of one set only",
				ErrMixedSets, first.Name, first.Set, first.Owner.Network, s.Name, s.Set, s.Owner.Network)
		}
		if !bytes.Equal(s.ad, first.ad) || !bytes.Equal(s.line.Sealed, first.line.Sealed) || !bytes.Equal(s.line.Nonce, first.line.Nonce) {
			return Owner{}, nil, fmt.Errorf("%w: %s and %s claim the same set but disagree; one has been changed", ErrDamaged, first.Name, s.Name)
		}
		if d, ok := byIndex[s.Index]; ok {
			return Owner{}, nil, fmt.Errorf("%w: %s and %s are both share %d; give %d different shares", ErrDuplicateShare, d.Name, s.Name, s.Index, first.Threshold)
		}
		byIndex[s.Index] = s
		p, err := s.line.share()
		if err != nil {
			return Owner{}, nil, fmt.Errorf("%w: %s", ErrDamaged, s.Name)
		}
		points = append(points, p)
	}
	if len(points) < first.Threshold {
		return Owner{}, nil, fmt.Errorf("%w: %d different shares of set %s are needed to open the key, and only %d given",
			ErrTooFewShares, first.Threshold, first.Set, len(points))
	}
	s, err := secretsharing.Recover(uint(first.Threshold-1), points)
	if err != nil {
		return Owner{}, nil, fmt.Errorf("combine shares: %w", err)
	}
	aead, err := sealer(s)
	if err != nil {
		return Owner{}, nil, err
	}
	secret, err := aead.Open(nil, first.line.Nonce, first.line.Sealed, first.ad)
	if err != nil {
		return Owner{}, nil, fmt.Errorf("%w: the shares combine but the key they hold does not open", ErrDamaged)
	}
	return first.Owner, secret, nil
}
