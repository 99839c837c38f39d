package api

import (
	"io"
	"net/http"
	"strconv"
)

// Bundles is the node's offline bundles, as the API drives them.
type Bundles interface {
	// BundleFile writes a bundle for network to of what it may see after
	// feed seq since (since < 0: after its last acknowledgement).
	BundleFile(to string, since int64) (file []byte, header any, err error)
	// ImportBundleFile checks, opens and stores a bundle, or records an
	// acknowledgement; ack is the acknowledgement to carry back.
	ImportBundleFile(file []byte) (ack []byte, result any, err error)
}

// BundleImport is what importing a bundle answers.
type BundleImport struct {
	Result any    `json:"result"`
	Ack    []byte `json:"ack,omitempty"` // the signed acknowledgement file, to carry back
}

func (s *server) routesBundles(v1 func(string, func(http.ResponseWriter, *http.Request) error)) {
	v1("GET /v1/bundle", s.bundle)
	v1("POST /v1/bundle/import", s.importBundle)
}

func (s *server) bundles() (Bundles, error) {
	b, ok := s.node.(Bundles)
	if !ok {
		return nil, &httpError{code: http.StatusNotImplemented, msg: "this node writes no offline bundles"}
	}
	return b, nil
}

func (s *server) bundle(w http.ResponseWriter, r *http.Request) error {
	b, err := s.bundles()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	to := q.Get("to")
	if to == "" {
		return badRequest("to: name the network the bundle is for (its slug)")
	}
	since := int64(-1)
	if v := q.Get("since"); v != "" {
		if since, err = strconv.ParseInt(v, 10, 64); err != nil || since < 0 {
			return badRequest("since: %q is not a feed seq: use a whole number, 0 or more", v)
		}
	}
	file, _, err := b.BundleFile(to, since)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(file)
	return err
}

func (s *server) importBundle(w http.ResponseWriter, r *http.Request) error {
	b, err := s.bundles()
	if err != nil {
		return err
	}
	file, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxImport))
	if err != nil {
		return badRequest("could not read the bundle: %v", err)
	}
	ack, res, err := b.ImportBundleFile(file)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, BundleImport{Result: res, Ack: ack})
	return nil
}
