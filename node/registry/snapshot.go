package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// snapshotFormat is the version of the snapshot encoding.
const snapshotFormat = 1

// MaxSnapshot bounds how much DecodeSnapshot reads.
const MaxSnapshot = 256 << 20

type snapshotFile struct {
	Format int    `json:"format"`
	State  *State `json:"state"`
}

// EncodeSnapshot writes the whole state as JSON. The encoding is
// deterministic (encoding/json sorts map keys), so two replicas that
// applied the same log write the same bytes.
func EncodeSnapshot(s *State) ([]byte, error) {
	b, err := json.Marshal(snapshotFile{Format: snapshotFormat, State: s})
	if err != nil {
		return nil, fmt.Errorf("encode registry snapshot: %w", err)
	}
	return b, nil
}

// DecodeSnapshot reads a snapshot into a new State, strictly, and checks
// that it hangs together (every key under its own name, every node key's
// network present). It never merges into an existing state.
func DecodeSnapshot(r io.Reader) (*State, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSnapshot+1))
	if err != nil {
		return nil, fmt.Errorf("read registry snapshot: %w", err)
	}
	if len(b) > MaxSnapshot {
		return nil, fmt.Errorf("registry snapshot is larger than %d bytes", MaxSnapshot)
	}
	var f snapshotFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("registry snapshot is damaged: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("registry snapshot is damaged: data after its end")
	}
	if f.Format != snapshotFormat {
		return nil, fmt.Errorf("registry snapshot has format %d; this version of cairn reads format %d", f.Format, snapshotFormat)
	}
	if f.State == nil {
		return nil, fmt.Errorf("registry snapshot is damaged: it holds no state")
	}
	s := f.State
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("registry snapshot is damaged: %w", err)
	}
	return s, nil
}

// check verifies the state's internal consistency.
func (s *State) check() error {
	for slug, n := range s.Networks {
		if n == nil || n.Slug != slug {
			return fmt.Errorf("network %q is filed under another name", slug)
		}
	}
	for id, k := range s.Nodes {
		if k == nil || k.PeerID != id {
			return fmt.Errorf("node key %q is filed under another ID", id)
		}
		if _, ok := s.Networks[k.Network]; !ok {
			return fmt.Errorf("node key %s belongs to network %q, which is missing", short(id), k.Network)
		}
	}
	for id, inv := range s.Invites {
		if inv == nil || inv.ID != id {
			return fmt.Errorf("invite %q is filed under another id", id)
		}
	}
	for id, vs := range s.Templates {
		for _, t := range vs {
			if t.ID != id {
				return fmt.Errorf("template %q is filed under %q", t.ID, id)
			}
		}
	}
	if s.Genesis == "" && len(s.Networks) > 0 {
		return fmt.Errorf("it has networks but no genesis")
	}
	return nil
}
