package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/inpud/cairn/model/templates"
	"github.com/inpud/cairn/node/federation"
	"github.com/inpud/cairn/node/registry"
)

// Federation is what the API needs of the node's place in the federation.
type Federation interface {
	Federation() *federation.Registry
	Join(ctx context.Context, code string) (registry.Result, error)
}

func (s *server) fed() (Federation, bool) {
	f, ok := s.node.(Federation)
	return f, ok
}

func (s *server) routesFederation(v1 func(string, func(http.ResponseWriter, *http.Request) error)) {
	v1("GET /v1/registry/status", s.registryStatus)
	v1("POST /v1/invites", s.invite)
	v1("POST /v1/join", s.join)
	v1("GET /v1/members", s.members)
	v1("GET /v1/members/{slug}", s.member)
	v1("POST /v1/members/{slug}/{action}", s.memberAction)
	v1("POST /v1/templates", s.publishTemplate)
	v1("POST /v1/sync/now", s.syncNow)
	v1("GET /v1/sync/status", func(w http.ResponseWriter, r *http.Request) error {
		return s.syncView(w, func(sy Syncer) (any, error) { return sy.SyncStatus() })
	})
	v1("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) error {
		return s.syncView(w, func(sy Syncer) (any, error) { return sy.Peers() })
	})
}

// Syncer is the node's replication, as the API drives it.
type Syncer interface {
	SyncNow(ctx context.Context) (any, error)
	SyncStatus() (any, error)
	Peers() (any, error)
}

func (s *server) syncView(w http.ResponseWriter, get func(Syncer) (any, error)) error {
	sy, ok := s.node.(Syncer)
	if !ok {
		return &httpError{code: http.StatusNotImplemented, msg: "this node does not sync"}
	}
	v, err := get(sy)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *server) syncNow(w http.ResponseWriter, r *http.Request) error {
	sy, ok := s.node.(Syncer)
	if !ok {
		return &httpError{code: http.StatusNotImplemented, msg: "this node does not sync"}
	}
	res, err := sy.SyncNow(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// registryError maps a registry refusal to a status code.
func registryError(err error) error {
	code := 0
	switch {
	case errors.Is(err, registry.ErrInvalidCommand):
		code = http.StatusBadRequest
	case errors.Is(err, registry.ErrUnauthorised), errors.Is(err, registry.ErrBadSignature):
		code = http.StatusForbidden
	case errors.Is(err, registry.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, registry.ErrConflict), errors.Is(err, registry.ErrExpired), errors.Is(err, federation.ErrAlreadyExists):
		code = http.StatusConflict
	case errors.Is(err, federation.ErrNoLeader):
		code = http.StatusServiceUnavailable
	}
	if code == 0 {
		return err
	}
	return &httpError{code: code, msg: err.Error()}
}

func (s *server) needFederation() (*federation.Registry, error) {
	f, ok := s.fed()
	if !ok {
		return nil, &httpError{code: http.StatusNotImplemented, msg: "this node has no federation registry"}
	}
	return f.Federation(), nil
}

// needJoined is needFederation for registry changes: it refuses them on a
// node that belongs to no federation yet.
func (s *server) needJoined() (*federation.Registry, error) {
	r, err := s.needFederation()
	if err != nil {
		return nil, err
	}
	if r.Empty() {
		return nil, &httpError{code: http.StatusConflict, msg: "this node belongs to no federation yet: create one with cairn start --bootstrap, or join one with cairn join CODE"}
	}
	return r, nil
}

func (s *server) registryStatus(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.needFederation()
	if err != nil {
		return err
	}
	st, err := reg.Status()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// InviteRequest asks for an invite for a new network.
type InviteRequest struct {
	Network string `json:"network"`
	Name    string `json:"name"`
	Level   string `json:"level"`
	Country string `json:"country,omitempty"`
	Region  string `json:"region,omitempty"`
	Parent  string `json:"parent,omitempty"`
	Role    string `json:"role,omitempty"`    // member (default) or steward
	Expires string `json:"expires,omitempty"` // a duration, e.g. 72h (default)
}

// InviteResponse carries the code to hand to the new network.
type InviteResponse struct {
	ID      string    `json:"id"` // the invite's id
	Code    string    `json:"code"`
	Network string    `json:"network"`
	Role    string    `json:"role"`
	Expires time.Time `json:"expires"`
}

// MaxInviteTTL is the longest an invite may stay open.
const MaxInviteTTL = 30 * 24 * time.Hour

func (s *server) invite(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.needJoined()
	if err != nil {
		return err
	}
	var req InviteRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	role := registry.RoleMember
	switch req.Role {
	case "", "member":
	case "steward":
		role = registry.RoleSteward
	default:
		return badRequest("role: %q is not a role: use member or steward", req.Role)
	}
	ttl := 72 * time.Hour
	if req.Expires != "" {
		if ttl, err = time.ParseDuration(req.Expires); err != nil || ttl <= 0 || ttl > MaxInviteTTL {
			return badRequest("expires: %q is not a duration from 1m to 720h, e.g. 72h", req.Expires)
		}
	}
	p := registry.Profile{Slug: req.Network, Name: req.Name, Level: req.Level, Country: req.Country, Region: req.Region, Parent: req.Parent}
	if err := p.Validate(); err != nil {
		return err
	}
	code, err := reg.Invite(r.Context(), p, role, ttl)
	if err != nil {
		return registryError(err)
	}
	writeJSON(w, http.StatusCreated, InviteResponse{ID: code.Invite, Code: code.String(), Network: code.Network, Role: string(code.Role), Expires: time.UnixMilli(code.Expires).UTC()})
	return nil
}

// JoinRequest carries an invite code.
type JoinRequest struct {
	Code string `json:"code"`
}

func (s *server) join(w http.ResponseWriter, r *http.Request) error {
	f, ok := s.fed()
	if !ok {
		return &httpError{code: http.StatusNotImplemented, msg: "this node has no federation registry"}
	}
	var req JoinRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	res, err := f.Join(r.Context(), req.Code)
	if err != nil {
		return registryError(err)
	}
	writeJSON(w, http.StatusOK, resultView(res))
	return nil
}

// ResultView is a registry change as the API reports it.
type ResultView struct {
	ID      string `json:"id"` // the network (or node key) changed
	Kind    string `json:"kind"`
	Summary string `json:"summary"`
}

func resultView(res registry.Result) ResultView {
	id := res.Network
	if id == "" {
		id = res.Peer
	}
	if id == "" {
		id = res.Template
	}
	return ResultView{ID: id, Kind: res.Kind.String(), Summary: res.Summary}
}

// MemberView is one member network with its node keys.
type MemberView struct {
	ID string `json:"id"` // the network's slug
	registry.Network
	Nodes []registry.NodeKey `json:"nodes"`
}

func memberView(st *registry.State, n registry.Network) MemberView {
	nodes := st.NodeKeys(n.Slug)
	if nodes == nil {
		nodes = []registry.NodeKey{}
	}
	return MemberView{ID: n.Slug, Network: n, Nodes: nodes}
}

func (s *server) members(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.needFederation()
	if err != nil {
		return err
	}
	st := reg.State()
	out := []MemberView{}
	for _, n := range st.NetworkList() {
		out = append(out, memberView(st, n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) member(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.needFederation()
	if err != nil {
		return err
	}
	st := reg.State()
	n, ok := st.Network(r.PathValue("slug"))
	if !ok {
		return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("no member network %q: cairn members lists them", r.PathValue("slug"))}
	}
	writeJSON(w, http.StatusOK, memberView(st, n))
	return nil
}

var memberActions = map[string]registry.Kind{
	"suspend": registry.Suspend, "reinstate": registry.Reinstate, "retire": registry.Retire,
	"promote": registry.Promote, "demote": registry.Demote,
}

func (s *server) memberAction(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.needJoined()
	if err != nil {
		return err
	}
	kind, ok := memberActions[r.PathValue("action")]
	if !ok {
		return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("%q is not something to do to a member: use suspend, reinstate, retire, promote or demote", r.PathValue("action"))}
	}
	res, err := reg.Propose(r.Context(), kind, registry.NetworkArgs{Network: r.PathValue("slug")})
	if err != nil {
		return registryError(err)
	}
	writeJSON(w, http.StatusOK, resultView(res))
	return nil
}

// publishTemplate takes a template file (YAML or JSON) and publishes it as
// a new version through the registry (stewards only).
func (s *server) publishTemplate(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.needJoined()
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBody+1))
	if err != nil {
		return badRequest("could not read the template: %v", err)
	}
	if int64(len(b)) > s.cfg.MaxBody {
		return badRequest("the template is larger than %d bytes", s.cfg.MaxBody)
	}
	t, err := templates.Parse(b)
	if err != nil {
		return badRequest("%v", err)
	}
	res, err := reg.Propose(r.Context(), registry.PutTemplate, registry.PutTemplateArgs{Template: t})
	if err != nil {
		return registryError(err)
	}
	writeJSON(w, http.StatusCreated, resultView(res))
	return nil
}
