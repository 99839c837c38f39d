package node

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// NodeKeys is what a key backup holds: the node key (as identity.key holds
// it, a libp2p-encoded Ed25519 key) and the archive key, with the network
// and peer ID they belong to.
type NodeKeys struct {
	Network  string
	ID       peer.ID
	Identity []byte
	Archive  []byte
}

// ReadNodeKeys reads the keys of the node in dir straight from its files,
// without taking the data dir's lock, so the node may be running or not.
// On an encrypted node the keys are sealed under the data key, so it needs
// the node's passphrase (ErrNeedPassphrase without one, ErrWrongPassphrase
// for another); on a node in clear passphrase is not used. It writes
// nothing: a data dir without an archive key gives ErrNoArchiveKey.
func ReadNodeKeys(dir string, passphrase []byte) (NodeKeys, error) {
	p, err := readProfile(dir)
	if err != nil {
		return NodeKeys{}, err
	}
	dk, err := openDataKey(dir, passphrase)
	if err != nil {
		return NodeKeys{}, err
	}
	id, err := loadOrCreateIdentity(dir, dk, false)
	if err != nil {
		return NodeKeys{}, err
	}
	raw, err := crypto.MarshalPrivateKey(id.Priv)
	if err != nil {
		return NodeKeys{}, fmt.Errorf("encode node key: %w", err)
	}
	ak, err := loadOrCreateArchiveKey(dir, dk, id.ID.String(), false)
	if err != nil {
		return NodeKeys{}, err
	}
	return NodeKeys{Network: p.Slug, ID: id.ID, Identity: raw, Archive: ak}, nil
}

// NetworkOf reads the slug of the network whose node is in dir, without
// its keys or the data dir's lock.
func NetworkOf(dir string) (string, error) {
	p, err := readProfile(dir)
	return p.Slug, err
}

// keysJSON is how NodeKeys is encoded inside a sealed backup or a share set.
type keysJSON struct {
	Network  string `json:"network"`
	PeerID   string `json:"peer_id"`
	Identity []byte `json:"identity"`
	Archive  []byte `json:"archive"`
}

// Encode gives the bytes a backup seals.
func (k NodeKeys) Encode() ([]byte, error) {
	return json.Marshal(keysJSON{Network: k.Network, PeerID: k.ID.String(), Identity: k.Identity, Archive: k.Archive})
}

// DecodeNodeKeys reads what Encode wrote and checks that the node key is an
// Ed25519 key whose peer ID is the one recorded, and that the archive key
// has its size.
func DecodeNodeKeys(b []byte) (NodeKeys, error) {
	var j keysJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return NodeKeys{}, fmt.Errorf("the backed-up keys are not readable: %w", err)
	}
	priv, err := crypto.UnmarshalPrivateKey(j.Identity)
	if err != nil || priv.Type() != crypto.Ed25519 {
		return NodeKeys{}, fmt.Errorf("the backed-up node key is not an Ed25519 key")
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return NodeKeys{}, fmt.Errorf("derive peer ID: %w", err)
	}
	if id.String() != j.PeerID {
		return NodeKeys{}, fmt.Errorf("the backed-up node key is of peer %s, not %s as recorded", id, j.PeerID)
	}
	if len(j.Archive) != ArchiveKeySize {
		return NodeKeys{}, fmt.Errorf("the backed-up archive key has %d bytes, not %d", len(j.Archive), ArchiveKeySize)
	}
	return NodeKeys{Network: j.Network, ID: id, Identity: j.Identity, Archive: j.Archive}, nil
}

// Same reports whether k and o hold the same keys.
func (k NodeKeys) Same(o NodeKeys) bool {
	return k.ID == o.ID && subtle.ConstantTimeCompare(k.Identity, o.Identity) == 1 &&
		subtle.ConstantTimeCompare(k.Archive, o.Archive) == 1
}
