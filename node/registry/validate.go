package registry

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/model"
)

// Limits on what the registry holds.
const (
	MaxAddrs        = 16  // listen multiaddrs per node
	MaxAddrLen      = 256 // bytes per multiaddr
	MaxCustodians   = 16
	MinCustodians   = 2
	MaxKeysPerNet   = 16  // non-revoked node keys per network
	MaxOpenInvites  = 256 // invites neither used nor expired
	MaxInviteMillis = int64(30 * 24 * 60 * 60 * 1000)
	MaxTemplates    = 256 // templates in a genesis command
)

// peerKey returns the Ed25519 key inside a peer ID. The ID must be in its
// canonical text form: peer.Decode also accepts the CID form of the same
// key, and two spellings of one key would be two registry entries (a
// revoked key could come back under its other name).
func peerKey(id string) (ed25519.PublicKey, error) {
	if id == "" {
		return nil, refuse(ErrInvalidCommand, "a peer ID is required")
	}
	pid, err := peer.Decode(id)
	if err != nil {
		return nil, refuseCause(ErrInvalidCommand, err, "%q is not a peer ID", truncate(id, 60))
	}
	if pid.String() != id {
		return nil, refuse(ErrInvalidCommand, "%q is not written in the canonical form of its peer ID; use %s", truncate(id, 60), pid)
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		return nil, refuseCause(ErrInvalidCommand, err, "peer ID %s does not carry its public key; node keys must be Ed25519", short(id))
	}
	if pub.Type() != crypto.Ed25519 {
		return nil, refuse(ErrInvalidCommand, "peer ID %s is not an Ed25519 key; node keys must be Ed25519", short(id))
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, refuse(ErrInvalidCommand, "peer ID %s does not carry a usable Ed25519 key", short(id))
	}
	return ed25519.PublicKey(raw), nil
}

// short abbreviates a peer ID for messages: the last 8 characters are
// what people compare.
func short(id string) string {
	if len(id) <= 16 || !utf8.ValidString(id) {
		return truncate(id, 16)
	}
	return "…" + id[len(id)-8:]
}

func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return &model.FieldError{Field: field, Msg: "is not valid UTF-8 text"}
	}
	if strings.TrimSpace(s) == "" {
		return &model.FieldError{Field: field, Msg: "is required"}
	}
	if n := utf8.RuneCountInString(s); n > max {
		return &model.FieldError{Field: field, Msg: fmt.Sprintf("is %d characters long; at most %d are allowed", n, max)}
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return &model.FieldError{Field: field, Msg: fmt.Sprintf("contains the control character %U", r)}
		}
	}
	return nil
}

// checkAddrs checks listen multiaddrs by their shape only: printable ASCII
// starting with '/', no spaces, no duplicates. Parsing them with
// go-multiaddr would make Apply depend on that library's protocol table,
// and two replicas built with different versions could then decide
// differently; nodes parse the addresses when they dial.
func checkAddrs(addrs []string) error {
	if len(addrs) > MaxAddrs {
		return refuse(ErrInvalidCommand, "a node may publish at most %d addresses, not %d", MaxAddrs, len(addrs))
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if len(a) == 0 || len(a) > MaxAddrLen {
			return refuse(ErrInvalidCommand, "address %q must be 1 to %d bytes long", truncate(a, 40), MaxAddrLen)
		}
		if a[0] != '/' || strings.Contains(a, "//") {
			return refuse(ErrInvalidCommand, "%q is not a multiaddr: write it like /ip4/203.0.113.5/tcp/4001", truncate(a, 40))
		}
		for i := 0; i < len(a); i++ {
			if a[i] <= ' ' || a[i] > '~' {
				return refuse(ErrInvalidCommand, "%q is not a multiaddr: it may hold only printable ASCII without spaces", truncate(a, 40))
			}
		}
		if seen[a] {
			return refuse(ErrInvalidCommand, "address %s appears twice", a)
		}
		seen[a] = true
	}
	return nil
}

// checkID checks a random hex identifier (invite ids, nonces).
func checkHexID(field, s string, min, max int) error {
	if len(s) < min || len(s) > max || !isLowerHex(s) {
		return refuse(ErrInvalidCommand, "the %s must be %d to %d lower-case hex digits", field, min, max)
	}
	return nil
}
