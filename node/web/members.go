package web

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/inpud/cairn/node/registry"
)

// peerView is one member node this node replicates with, as the API's
// /v1/sync/status serves it (node.PeerState).
type peerView struct {
	ID           string         `json:"id"`
	Network      string         `json:"network"`
	Address      string         `json:"address"`
	Connected    bool           `json:"connected"`
	LastPull     time.Time      `json:"last_pull"`
	LastError    string         `json:"last_error"`
	Checkpoint   uint64         `json:"checkpoint"`
	Head         uint64         `json:"head"`
	Lag          uint64         `json:"lag"`
	Received     int            `json:"received"`
	Stored       int            `json:"stored"`
	Rejected     int            `json:"rejected"`
	Rejections   map[string]int `json:"rejections"`
	Drops        int            `json:"drops"`
	DroppedUntil time.Time      `json:"dropped_until"`
	DropReason   string         `json:"drop_reason"`
	// Filled by the page:
	Reasons string // "bad-signature 2, stale 1"
	Dropped bool   // dropped now
}

type memberRow struct {
	registry.Network
	Nodes int  // node keys in the registry (not revoked)
	Self  bool // this node's own network
}

type membersPage struct {
	InFederation bool
	Members      []memberRow
	Stewards     []string
	SyncKnown    bool
	Peers        []peerView
}

// members shows the federation's member networks and this node's peers
// with their sync state; nothing here can be changed.
func (u *UI) membersPage(r *req) error {
	p := membersPage{}
	self := u.node.Profile().Slug
	if f, ok := u.node.(Federated); ok && f.Federation() != nil {
		f.Federation().View(func(s *registry.State) {
			for _, n := range s.NetworkList() {
				row := memberRow{Network: n, Self: n.Slug == self}
				for _, k := range s.NodeKeys(n.Slug) {
					if !k.Revoked {
						row.Nodes++
					}
				}
				p.Members = append(p.Members, row)
			}
		})
	}
	sort.Slice(p.Members, func(i, j int) bool { return p.Members[i].Slug < p.Members[j].Slug })
	for _, m := range p.Members {
		p.InFederation = true
		if m.Role == registry.RoleSteward && m.Status == registry.StatusActive {
			p.Stewards = append(p.Stewards, m.Name)
		}
	}
	if s, ok := u.node.(Syncing); ok {
		if st, err := s.SyncStatus(); err == nil {
			var v struct {
				Peers []peerView `json:"peers"`
			}
			if err := viaJSON(st, &v); err != nil {
				return err
			}
			p.SyncKnown, p.Peers = true, v.Peers
		}
	}
	now := u.cfg.Now()
	for i := range p.Peers {
		pv := &p.Peers[i]
		pv.Reasons = reasonCounts(pv.Rejections)
		pv.Dropped = now.Before(pv.DroppedUntil)
	}
	sort.Slice(p.Peers, func(i, j int) bool {
		a, b := p.Peers[i], p.Peers[j]
		if a.Network != b.Network {
			return a.Network < b.Network
		}
		return a.ID < b.ID
	})
	u.render(r, http.StatusOK, "members", pageData{Title: r.lang.T("nav.members"), Nav: "members", Body: p})
	return nil
}

// reasonCounts says how many versions or requests were refused for each
// reason, as `cairn peers` does: "bad-signature 2, stale 1".
func reasonCounts(m map[string]int) string {
	var reasons []string
	for r, n := range m {
		if n > 0 {
			reasons = append(reasons, r)
		}
	}
	sort.Strings(reasons)
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, m[r])
	}
	return strings.Join(parts, ", ")
}
