package federation

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/node/raftnet"
	"github.com/inpud/cairn/node/registry"
)

// Recover rebuilds the registry's voter set from this node's local copy,
// for when a quorum of stewards is lost for good (docs/OPERATIONS.md). The
// node must be stopped. voters are the peer IDs that will vote from now on;
// include this node's own if it is to lead.
//
// hashicorp/raft's RecoverCluster may commit entries the old cluster never
// committed: whatever this node holds in its log becomes the registry.
// Recover every surviving steward node with the same voter list, from the
// one whose log is longest.
func Recover(cfg Config, self peer.ID, voters []string) (*registry.State, error) {
	if len(voters) == 0 {
		return nil, fmt.Errorf("%w: give at least one voter", registry.ErrInvalidCommand)
	}
	servers := make([]raft.Server, 0, len(voters))
	seen := map[string]bool{}
	for _, v := range voters {
		id, err := peer.Decode(v)
		if err != nil || id.String() != v {
			return nil, fmt.Errorf("%w: %q is not a peer ID (cairn status shows a node's, starting 12D3KooW)", registry.ErrInvalidCommand, v)
		}
		if seen[v] {
			continue
		}
		seen[v] = true
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raftnet.ServerID(id), Address: raftnet.ServerAddress(id)})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open registry log: %w", err)
	}
	defer bolt.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 3, raftnet.HCLog(cfg.Logger, slog.LevelWarn))
	if err != nil {
		return nil, fmt.Errorf("open registry snapshots: %w", err)
	}
	existing, err := raft.HasExistingState(bolt, bolt, snaps)
	if err != nil {
		return nil, err
	}
	if !existing {
		return nil, errors.New("this node holds no registry to recover from; recover a node that was part of the federation")
	}
	fsm := registry.NewFSM()
	_, trans := raft.NewInmemTransport(raftnet.ServerAddress(self))
	if err := raft.RecoverCluster(cfg.raftConfig(self, cfg.Logger), fsm, bolt, bolt, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
		return nil, fmt.Errorf("recover the registry: %w", err)
	}
	return fsm.State(), nil
}
