package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Identity is the node's Ed25519 key. It is a libp2p key, so the same key
// is the node's peer ID on the network and signs every record it writes.
type Identity struct {
	Priv crypto.PrivKey
	ID   peer.ID
}

// identityFile is where the key lives in the data dir, mode 0600; on an
// encrypted node, only sealed, as identity.key.sealed (keyseal.go).
const identityFile = "identity.key"

// SigningKey returns the key as a standard-library Ed25519 key.
func (i Identity) SigningKey() (ed25519.PrivateKey, error) {
	raw, err := i.Priv.Raw()
	if err != nil {
		return nil, fmt.Errorf("read node key: %w", err)
	}
	if len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("node key is not an Ed25519 key (%d bytes)", len(raw))
	}
	return ed25519.PrivateKey(raw), nil
}

// loadOrCreateIdentity reads the node key, creating it when create is set
// and there is none. With a data key (an encrypted node) it is read from,
// and created as, identity.key.sealed (keyseal.go).
func loadOrCreateIdentity(dir string, dk *dataKey, create bool) (Identity, error) {
	b, err := readKey(dir, identityFile, dk)
	if errors.Is(err, fs.ErrNotExist) && create {
		id, raw, err := newIdentity()
		if err != nil {
			return Identity{}, err
		}
		if err := writeKey(dir, identityFile, raw, id.ID.String(), dk); err != nil {
			return Identity{}, err
		}
		return id, nil
	}
	if err != nil {
		return Identity{}, err
	}
	return parseIdentity(filepath.Join(dir, identityFile), b)
}

// newIdentity makes a new node key, and gives it as identity.key holds it.
func newIdentity() (Identity, []byte, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return Identity{}, nil, fmt.Errorf("create node key: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return Identity{}, nil, fmt.Errorf("encode node key: %w", err)
	}
	id, err := parseIdentity("the new node key", raw)
	return id, raw, err
}

// parseIdentity reads a node key as identity.key holds it; path names it
// in messages.
func parseIdentity(path string, b []byte) (Identity, error) {
	priv, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return Identity{}, fmt.Errorf("node key %s is damaged: %w", path, err)
	}
	if priv.Type() != crypto.Ed25519 {
		return Identity{}, fmt.Errorf("node key %s is not an Ed25519 key", path)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return Identity{}, fmt.Errorf("derive peer ID: %w", err)
	}
	return Identity{Priv: priv, ID: id}, nil
}

// AuthorKey returns the public key named by an author peer ID. Ed25519 peer
// IDs embed the key, so no registry is needed to check a signature.
func AuthorKey(author string) (ed25519.PublicKey, error) {
	id, err := peer.Decode(author)
	if err != nil {
		return nil, fmt.Errorf("not a peer ID: %w", err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("peer ID carries no public key: %w", err)
	}
	if pub.Type() != crypto.Ed25519 {
		return nil, errors.New("author key is not Ed25519")
	}
	raw, err := pub.Raw()
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(raw), nil
}
