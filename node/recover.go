package node

import (
	"path/filepath"

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
	id, err := loadOrCreateIdentity(cfg.DataDir, false)
	if err != nil {
		return RecoverResult{}, err
	}
	rc := cfg.Registry
	rc.Dir = filepath.Join(cfg.DataDir, registryDir)
	rc.Logger = cfg.Logger
	st, err := federation.Recover(rc, id.ID, voters)
	if err != nil {
		return RecoverResult{}, err
	}
	return RecoverResult{ID: id.ID.String(), Voters: voters, Networks: len(st.NetworkList()), Genesis: st.Genesis}, nil
}

// PeerID reads the peer ID of the node in dataDir without starting it.
func PeerID(dataDir string) (string, error) {
	id, err := loadOrCreateIdentity(dataDir, false)
	if err != nil {
		return "", err
	}
	return id.ID.String(), nil
}
