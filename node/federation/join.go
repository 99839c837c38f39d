package federation

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/inpud/cairn/node/registry"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// JoinProtocol is the one protocol a joiner, not yet a member, may speak:
// it carries the joiner's signed registry.Join command to a member node, which has
// the leader commit it.
const JoinProtocol protocol.ID = "/cairn/registry/join/1"

// inviteCodePrefix starts every invite code, so a pasted code that is not
// one is recognised at once.
const inviteCodePrefix = "cairn-invite-1:"

// InviteCode is what a steward hands a new network (by a channel they
// trust): the federation's genesis hash, the invite's id and one-time
// secret, and how to reach the stewards.
type InviteCode struct {
	Genesis  string        `json:"g"`
	Invite   string        `json:"i"`
	Secret   string        `json:"s"`
	Network  string        `json:"n"`
	Role     registry.Role `json:"r"`
	Expires  int64         `json:"e"`
	Stewards []StewardAddr `json:"st"`
}

// StewardAddr is one steward node a joiner can reach.
type StewardAddr struct {
	ID    string   `json:"id"`
	Addrs []string `json:"a"`
}

// String is the code as people pass it on: one line of text.
func (c InviteCode) String() string {
	b, _ := json.Marshal(c)
	return inviteCodePrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseInviteCode reads a code made by InviteCode.String.
func ParseInviteCode(s string) (InviteCode, error) {
	var c InviteCode
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, inviteCodePrefix) {
		return c, fmt.Errorf("%w: this is not a Cairn invite code (it should start with %s)", registry.ErrInvalidCommand, inviteCodePrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, inviteCodePrefix))
	if err != nil {
		return c, fmt.Errorf("%w: the invite code is damaged (was it copied whole?)", registry.ErrInvalidCommand)
	}
	if err := strictUnmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: the invite code is damaged (was it copied whole?)", registry.ErrInvalidCommand)
	}
	if c.Genesis == "" || c.Invite == "" || c.Secret == "" || len(c.Stewards) == 0 {
		return c, fmt.Errorf("%w: the invite code is incomplete", registry.ErrInvalidCommand)
	}
	return c, nil
}

// Invite registers an invite for a new network and returns its code. Only
// a steward's node can make one (the registry refuses others).
func (r *Registry) Invite(ctx context.Context, profile registry.Profile, role registry.Role, ttl time.Duration) (InviteCode, error) {
	id, secret := randomHex(16), randomHex(32)
	expires := time.Now().Add(ttl).UnixMilli()
	if _, err := r.Propose(ctx, registry.CreateInvite, registry.CreateInviteArgs{ID: id, SecretHash: registry.HashSecret(secret), Network: profile, Role: role, Expires: expires}); err != nil {
		return InviteCode{}, err
	}
	code := InviteCode{Invite: id, Secret: secret, Network: profile.Slug, Role: role, Expires: expires}
	st := r.fsm.State()
	code.Genesis = st.Genesis
	for _, v := range st.Voters() {
		sa := StewardAddr{ID: v}
		if v == r.self.String() {
			for _, a := range r.host.Addrs() {
				sa.Addrs = append(sa.Addrs, a.String())
			}
		} else if n, ok := st.Node(v); ok {
			sa.Addrs = n.Addrs
		}
		if len(sa.Addrs) > 0 {
			code.Stewards = append(code.Stewards, sa)
		}
	}
	return code, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// joinRequest is the joiner's frame.
type joinRequest struct {
	Genesis string `json:"genesis"`
	Command []byte `json:"command"` // registry.EncodeSigned of a registry.Join command
}

// registry.Join makes this node a member of the federation in code: it reaches a
// steward named there, has its signed registry.Join committed, and waits until its
// own replica holds the registry with itself in it and the genesis the
// code names.
func (r *Registry) Join(ctx context.Context, code InviteCode) (registry.Result, error) {
	if !r.Empty() {
		return registry.Result{}, fmt.Errorf("%w: this node already belongs to a federation", ErrAlreadyExists)
	}
	var stewards []peer.ID
	r.mu.Lock()
	for _, s := range code.Stewards {
		id, err := peer.Decode(s.ID)
		if err != nil {
			continue
		}
		var addrs []ma.Multiaddr
		for _, a := range s.Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				addrs = append(addrs, m)
			}
		}
		r.host.Peerstore().AddAddrs(id, addrs, peerstore.PermanentAddrTTL)
		r.trusted[id] = true
		stewards = append(stewards, id)
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		clear(r.trusted)
		r.mu.Unlock()
	}()
	if len(stewards) == 0 {
		return registry.Result{}, fmt.Errorf("%w: the invite code names no steward this node can reach", registry.ErrInvalidCommand)
	}
	var addrs []string
	for _, a := range r.host.Addrs() {
		if len(addrs) < registry.MaxAddrs {
			addrs = append(addrs, a.String())
		}
	}
	sc, err := registry.Sign(r.key, r.self.String(), registry.Join, registry.JoinArgs{Invite: code.Invite, Secret: code.Secret, Addrs: addrs})
	if err != nil {
		return registry.Result{}, err
	}
	req, _ := json.Marshal(joinRequest{Genesis: code.Genesis, Command: registry.EncodeSigned(sc)})
	var res registry.Result
	var errs []error
	joined := false
	for _, st := range stewards {
		res, err = r.sendJoin(ctx, st, req)
		if err == nil {
			joined = true
			break
		}
		var re *remoteError
		if errors.As(err, &re) {
			return registry.Result{}, err // the registry refused: another steward would too
		}
		errs = append(errs, err)
	}
	if !joined {
		return registry.Result{}, fmt.Errorf("could not reach any steward named in the invite: %w", errors.Join(errs...))
	}
	// Wait for the leader to add this node to the raft configuration and
	// for the registry to replicate here; bounded even when ctx is not.
	ctx, cancel := context.WithTimeout(ctx, 2*r.cfg.ApplyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var member bool
		var genesis string
		r.fsm.View(func(s *registry.State) {
			_, _, member = s.Member(r.self.String())
			genesis = s.Genesis
		})
		if member {
			if genesis != code.Genesis {
				return res, fmt.Errorf("the federation this node received has genesis %s, but the invite names %s: stop the node and ask the steward who invited you", genesis, code.Genesis)
			}
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("joined, but the registry has not reached this node yet: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (r *Registry) sendJoin(ctx context.Context, to peer.ID, req []byte) (registry.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	defer cancel()
	s, err := r.host.NewStream(ctx, to, JoinProtocol)
	if err != nil {
		return registry.Result{}, fmt.Errorf("reach steward %s: %w", to, err)
	}
	defer s.Close()
	s.SetDeadline(deadline(ctx, r.cfg.ApplyTimeout))
	if err := writeFrame(s, req); err != nil {
		s.Reset()
		return registry.Result{}, err
	}
	s.CloseWrite()
	return readAnswer(bufio.NewReader(s))
}

// handleJoin serves JoinProtocol: guests may open it, so it accepts exactly
// one thing, a signed registry.Join command for this federation.
func (r *Registry) handleJoin(s network.Stream) {
	defer s.Close()
	b, ok := r.readRequest(s)
	if !ok {
		return
	}
	var req joinRequest
	if err := strictUnmarshal(b, &req); err != nil {
		writeAnswer(s, registry.Result{}, fmt.Errorf("%w: not a join request", registry.ErrInvalidCommand))
		return
	}
	var genesis string
	r.fsm.View(func(st *registry.State) { genesis = st.Genesis })
	if genesis == "" || req.Genesis != genesis {
		writeAnswer(s, registry.Result{}, fmt.Errorf("%w: this invite is for another federation (genesis %s; this one is %s)", registry.ErrConflict, shortHash(req.Genesis), shortHash(genesis)))
		return
	}
	sc, err := registry.DecodeSigned(req.Command)
	if err != nil {
		writeAnswer(s, registry.Result{}, err)
		return
	}
	c, err := sc.Open()
	if err != nil {
		writeAnswer(s, registry.Result{}, err)
		return
	}
	if c.Kind != registry.Join || c.Proposer != s.Conn().RemotePeer().String() {
		writeAnswer(s, registry.Result{}, fmt.Errorf("%w: the join protocol carries only the joining node's own join command", registry.ErrUnauthorised))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ApplyTimeout)
	defer cancel()
	res, err := r.Submit(ctx, sc)
	writeAnswer(s, res, err)
}
