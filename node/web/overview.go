package web

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/inpud/cairn/node/records"
	"github.com/inpud/cairn/node/registry"
)

// syncHealth is the part of the node's sync status (as /v1/sync/status
// serves it) the overview shows.
type syncHealth struct {
	Known     bool
	FeedHead  uint64    `json:"feed_head"`
	LastRound time.Time `json:"last_round"`
	Peers     []struct {
		ID        string    `json:"id"`
		Network   string    `json:"network"`
		Connected bool      `json:"connected"`
		LastPull  time.Time `json:"last_pull"`
		Lag       uint64    `json:"lag"`
		Rejected  int       `json:"rejected"`
		LastError string    `json:"last_error"`
	} `json:"peers"`
	Connected int
	Lag       uint64
	Rejected  int
	LastPull  time.Time
}

type overviewPage struct {
	InFederation bool
	Members      int
	Stewards     []string
	Sync         syncHealth
	Recent       []recentRecord
}

type recentRecord struct {
	Record   records.Record
	Title    string
	Path     string
	Audience []string
}

// recentCount is how many records the overview lists.
const recentCount = 10

func (u *UI) overview(r *req) error {
	p := overviewPage{}
	for _, n := range u.members() {
		if n.Status != registry.StatusActive {
			continue
		}
		p.InFederation = true
		p.Members++
		if n.Role == registry.RoleSteward {
			p.Stewards = append(p.Stewards, n.Name)
		}
	}
	if s, ok := u.node.(Syncing); ok {
		if st, err := s.SyncStatus(); err == nil {
			if err := viaJSON(st, &p.Sync); err != nil {
				return err
			}
			p.Sync.Known = true
			for _, pe := range p.Sync.Peers {
				if pe.Connected {
					p.Sync.Connected++
				}
				p.Sync.Lag += pe.Lag
				p.Sync.Rejected += pe.Rejected
				if pe.LastPull.After(p.Sync.LastPull) {
					p.Sync.LastPull = pe.LastPull
				}
			}
		}
	}
	recs, err := u.node.Records().List(records.Query{Limit: recentCount})
	if err != nil {
		return err
	}
	for _, rec := range recs {
		p.Recent = append(p.Recent, recentRecord{Record: rec, Title: recordTitle(r.lang, rec), Path: recordPath(rec), Audience: u.audienceWords(r.lang, rec.Audience, rec.Origin)})
	}
	u.render(r, 200, "overview", pageData{Title: r.lang.T("nav.overview"), Nav: "overview", Body: p})
	return nil
}

// viaJSON reads a value the node serves to the JSON API into the web's
// own view of it, so this package depends on the API's contract, not on
// the node's types.
func viaJSON(v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("read the node's status: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("read the node's status: %w", err)
	}
	return nil
}
