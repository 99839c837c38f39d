package api

import (
	"context"
	"net/http"

	"github.com/inpud/cairn/node/registry"
)

// Handover is the node's part in handing archives over, as the API drives it.
type Handover interface {
	// Handover retires network (this node's own when empty) and gives its
	// archive to steward network to; archiveKey is nil for the own network,
	// else the network's archive key rebuilt from its shares or backup.
	Handover(ctx context.Context, to, network string, archiveKey []byte) (registry.Result, error)
	// Archives lists the archives handed over to this node's network.
	Archives() any
}

// HandoverRequest asks for a handover. ArchiveKey (base64 in JSON) travels
// only over the local API, from the CLI that combined the shares.
type HandoverRequest struct {
	To         string `json:"to"`
	Network    string `json:"network,omitempty"`
	ArchiveKey []byte `json:"archive_key,omitempty"`
}

func (s *server) routesHandover(v1 func(string, func(http.ResponseWriter, *http.Request) error)) {
	v1("POST /v1/handover", s.handover)
	v1("GET /v1/handover/archives", s.archives)
}

func (s *server) handoverNode() (Handover, error) {
	h, ok := s.node.(Handover)
	if !ok {
		return nil, &httpError{code: http.StatusNotImplemented, msg: "this node cannot hand archives over"}
	}
	return h, nil
}

func (s *server) handover(w http.ResponseWriter, r *http.Request) error {
	h, err := s.handoverNode()
	if err != nil {
		return err
	}
	if _, err := s.needJoined(); err != nil {
		return err
	}
	var req HandoverRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	defer clear(req.ArchiveKey)
	res, err := h.Handover(r.Context(), req.To, req.Network, req.ArchiveKey)
	if err != nil {
		return registryError(err)
	}
	writeJSON(w, http.StatusOK, resultView(res))
	return nil
}

func (s *server) archives(w http.ResponseWriter, r *http.Request) error {
	h, err := s.handoverNode()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.Archives())
	return nil
}
