package api

import "net/http"

// Holders is the node's view of delivery receipts.
type Holders interface {
	// Holders lists which networks hold which version of one of this
	// network's records, the origin first. An unknown id wraps
	// records.ErrNotFound; a record of another network, records.ErrNotOwn.
	Holders(id string) (any, error)
}

func (s *server) holders(w http.ResponseWriter, r *http.Request) error {
	h, ok := s.node.(Holders)
	if !ok {
		return &httpError{code: http.StatusNotImplemented, msg: "this node does not collect delivery receipts"}
	}
	v, err := h.Holders(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
