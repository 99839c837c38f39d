// Package web is the node's web interface for members who do not use a
// terminal: server-rendered pages (html/template, a little plain
// JavaScript, SVG drawn on the server), every asset embedded, nothing
// fetched from anywhere else.
//
// The node serves it on its local API address, under "/". It talks to the
// node only through the Go services the JSON API uses (the Node interface
// below), never over HTTP. A browser gets in with a one-time login code
// (`cairn ui` asks the node for one through /v1/ui/login-code): the code
// works once and for CodeTTL; it opens a session kept in memory and named
// by an HttpOnly, SameSite=Strict cookie, which ends after SessionIdle
// without a request, or when the node stops. Every page needs a session,
// and every form carries the session's CSRF token.
//
// Pages: the overview; audits; the priority board; committee reports
// (reports.go: a form whose inputs carry the services' field names, so
// their sentences land next to the input); members and peers (members.go,
// read-only, from the registry and the node's sync status); CSV and NDJSON
// downloads (export.go, through api.WriteExport, the code /v1/export runs);
// and on every record, who can see it. browser_test.go drives chromium
// through all of it.
//
// All interface text comes from the message catalogues in messages/
// (English complete; French, Spanish and Russian started, falling back to
// English key by key). The language is the node's --language unless the
// person chose another (a cookie).
package web
