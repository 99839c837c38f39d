package node

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/node/federation"
)

// RecoverResult says what a registry recovery kept.
type RecoverResult struct {
	ID       string   `json:"id"` // this node's peer ID
	Voters   []string `json:"voters"`
	Networks int      `json:"networks"`
	Genesis  string   `json:"genesis"`
}

// RecoverRegistry rebuilds the registry's voter set on a stopped node
// after a quorum of stewards is lost for good (docs/OPERATIONS.md).
func RecoverRegistry(cfg Config, voters []string) (RecoverResult, error) {
	if _, err := readProfile(cfg.DataDir); err != nil {
		return RecoverResult{}, err
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return RecoverResult{}, err
	}
	defer unlock()
	id, err := peerIDOf(cfg.DataDir)
	if err != nil {
		return RecoverResult{}, err
	}
	rc := cfg.Registry
	rc.Dir = filepath.Join(cfg.DataDir, registryDir)
	rc.Logger = cfg.Logger
	st, err := federation.Recover(rc, id, voters)
	if err != nil {
		return RecoverResult{}, err
	}
	return RecoverResult{ID: id.String(), Voters: voters, Networks: len(st.NetworkList()), Genesis: st.Genesis}, nil
}

// PeerID reads the peer ID of the node in dataDir without starting it and
// without its passphrase.
func PeerID(dataDir string) (string, error) {
	id, err := peerIDOf(dataDir)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// peerIDOf reads the node's peer ID: on an encrypted node from the clear
// header of its sealed node key (the peer ID is public; the header is
// authenticated only when the key is opened), otherwise from identity.key.
func peerIDOf(dataDir string) (peer.ID, error) {
	id, err := sealedPeerID(dataDir)
	if !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	ident, err := loadOrCreateIdentity(dataDir, nil, false)
	if err != nil {
		return "", err
	}
	return ident.ID, nil
}
