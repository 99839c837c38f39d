package web

import (
	"net/http"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/api"
)

// exportButtons is what the download buttons of a page need: the kind
// they export ("" for every kind).
type exportButtons struct {
	Kind string
}

// export downloads records as the API's /v1/export serves them (the same
// code: api.WriteExport): ?format=csv or ndjson, ?kind= one kind or all.
func (u *UI) export(r *req) error {
	q := r.URL.Query()
	format := q.Get("format")
	ctype, err := api.ExportContentType(format)
	if err != nil {
		return u.fail400(r, "format", r.lang.T("export.format", format))
	}
	var kind model.Kind
	if k := q.Get("kind"); k != "" {
		if kind, err = model.ParseKind(k); err != nil {
			return u.fail400(r, "kind", err.Error())
		}
	}
	name := "cairn-" + u.node.Profile().Slug
	if kind != "" {
		name += "-" + string(kind)
	}
	name += "-" + u.cfg.Now().UTC().Format("2006-01-02") + "." + format
	h := r.w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	if err := api.WriteExport(r.w, u.node, kind, format); err != nil {
		// The download has begun: the person sees it cut short, the log says why.
		u.cfg.Logger.Error("web export failed", "kind", kind, "format", format, "err", err)
		http.Error(r.w, "", http.StatusInternalServerError)
	}
	return nil
}
