package api

import (
	"context"
	"net/http"

	"github.com/inpud/cairn/node/registry"
)

// Custody is the node's custody copies, as the API drives them.
type Custody interface {
	// SetCustodians names this network's custodians in the registry.
	SetCustodians(ctx context.Context, slugs []string) (registry.Result, error)
	// CustodyStatus says what each custodian keeps and how far behind it is.
	CustodyStatus(ctx context.Context) (any, error)
}

// CustodiansRequest names a network's custodians.
type CustodiansRequest struct {
	Custodians []string `json:"custodians"`
}

func (s *server) routesCustody(v1 func(string, func(http.ResponseWriter, *http.Request) error)) {
	v1("PUT /v1/custody/custodians", s.setCustodians)
	v1("GET /v1/custody/status", s.custodyStatus)
}

func (s *server) custody() (Custody, error) {
	c, ok := s.node.(Custody)
	if !ok {
		return nil, &httpError{code: http.StatusNotImplemented, msg: "this node keeps no custody copies"}
	}
	return c, nil
}

func (s *server) setCustodians(w http.ResponseWriter, r *http.Request) error {
	c, err := s.custody()
	if err != nil {
		return err
	}
	if _, err := s.needJoined(); err != nil {
		return err
	}
	var req CustodiansRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	res, err := c.SetCustodians(r.Context(), req.Custodians)
	if err != nil {
		return registryError(err)
	}
	writeJSON(w, http.StatusOK, resultView(res))
	return nil
}

func (s *server) custodyStatus(w http.ResponseWriter, r *http.Request) error {
	c, err := s.custody()
	if err != nil {
		return err
	}
	v, err := c.CustodyStatus(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
