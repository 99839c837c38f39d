package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/api"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write records to a file: ndjson (signed envelopes, every version; re-imports losslessly) or csv (for spreadsheets)",
		UsageText: "cairn export --out F [--format ndjson|csv] [--kind audit|priority|report]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "the file to write (it must not exist yet; - for standard output)", Required: true},
			&cli.StringFlag{Name: "format", Usage: "ndjson or csv", Value: "ndjson"},
			&cli.StringFlag{Name: "kind", Usage: "only audit, priority or report records"},
			&cli.BoolFlag{Name: "plain", Usage: "on a node encrypted at rest: write the export in clear (by default it is sealed under the node's passphrase)"},
			passphraseFileFlag(),
		},
		Action: func(c *cli.Context) error {
			format := c.String("format")
			if format != api.FormatNDJSON && format != api.FormatCSV {
				return usageError("--format: %q is not an export format: use ndjson or csv", format)
			}
			q := url.Values{"format": {format}}
			if k := c.String("kind"); k != "" {
				if _, err := model.ParseKind(k); err != nil {
					return err
				}
				q.Set("kind", k)
			}
			cl, err := connect(c)
			if err != nil {
				return err
			}
			fetch := func(w io.Writer) error { return cl.do(c.Context, "GET", "/v1/export?"+q.Encode(), nil, w) }
			if node.Encrypted(dataDir(c)) && !c.Bool("plain") {
				// Sealed: the whole export is read, sealed, then written.
				pass, err := readPassphrase(c, false)
				if err != nil {
					return err
				}
				fetch = func(w io.Writer) error {
					var plain bytes.Buffer
					if err := cl.do(c.Context, "GET", "/v1/export?"+q.Encode(), nil, &plain); err != nil {
						return err
					}
					sealed, err := node.SealExport(dataDir(c), pass, plain.Bytes())
					if err != nil {
						return err
					}
					_, err = w.Write(sealed)
					return err
				}
			}
			out := c.String("out")
			if out == "-" {
				return fetch(c.App.Writer)
			}
			// Write next to the target and rename, so a failed export never
			// leaves a partial file that looks complete.
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("--out: %s already exists; choose a new file name so nothing is overwritten", out)
			}
			if err != nil {
				return fmt.Errorf("create %s: %w", out, err)
			}
			f.Close()
			tmp, err := os.CreateTemp(filepath.Dir(out), ".cairn-export-*")
			if err != nil {
				os.Remove(out)
				return err
			}
			defer os.Remove(tmp.Name())
			if err := fetch(tmp); err != nil {
				tmp.Close()
				os.Remove(out)
				return err
			}
			if err := tmp.Sync(); err != nil {
				return err
			}
			st, _ := tmp.Stat()
			tmp.Close()
			if err := os.Rename(tmp.Name(), out); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, map[string]any{"id": out, "file": out, "format": format, "bytes": st.Size()})
			}
			fmt.Fprintf(c.App.Writer, "exported to %s (%s, %d bytes)\n", out, format, st.Size())
			return nil
		},
	}
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import an ndjson export or an offline bundle (cairn bundle): every signature verified; records already held are skipped",
		UsageText: "cairn import F [--skip-rejected] [--ack-out ACK]",
		Description: "By default an import is all or nothing: if any line is not a valid, correctly signed\n" +
			"record, nothing is imported and every rejected line is named. --skip-rejected imports the\n" +
			"records that verify and reports the rest.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "skip-rejected", Usage: "import what verifies even if some lines are rejected"},
			&cli.StringFlag{Name: "ack-out", Usage: "for an offline bundle: where to write the acknowledgement (default: next to it, F.ack)"},
			passphraseFileFlag()},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "a file"); err != nil {
				return err
			}
			f, err := os.Open(c.Args().Get(0))
			if err != nil {
				return fmt.Errorf("open %s: %w", c.Args().Get(0), err)
			}
			defer f.Close()
			cl, err := connect(c)
			if err != nil {
				return err
			}
			if isB, err := isBundleFile(f); err != nil {
				return err
			} else if isB {
				return importBundle(c.Context, c, cl, f, c.String("ack-out"))
			}
			br := bufio.NewReader(f)
			var body io.Reader = br
			if head, _ := br.Peek(64); node.IsSealedExport(head) {
				// A sealed export opens with the passphrase of the node that wrote it.
				b, err := io.ReadAll(br)
				if err != nil {
					return fmt.Errorf("read %s: %w", c.Args().Get(0), err)
				}
				pass, err := readPassphrase(c, false)
				if err != nil {
					return err
				}
				if b, err = node.OpenExport(b, pass); err != nil {
					return fmt.Errorf("%s: %w", c.Args().Get(0), err)
				}
				body = bytes.NewReader(b)
			}
			path := "/v1/import"
			if c.Bool("skip-rejected") {
				path += "?partial=true"
			}
			var res api.ImportResult
			err = cl.do(c.Context, "POST", path, body, &res)
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == 422 {
				if jerr := json.Unmarshal(ae.Body, &res); jerr != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			if wantJSON(c) {
				printJSON(c.App.Writer, res)
			} else {
				fmt.Fprintf(c.App.Writer, "imported %d, skipped %d (already held), rejected %d\n", res.Imported, res.Skipped, len(res.Rejected))
				for _, r := range res.Rejected {
					id := ""
					if r.ID != "" {
						id = " (record " + r.ID + ")"
					}
					fmt.Fprintf(c.App.ErrWriter, "  line %d%s: %s\n", r.Line, id, r.Reason)
				}
			}
			if len(res.Rejected) > 0 {
				if res.AllOrNothing {
					return fmt.Errorf("%s: %d line(s) rejected, so nothing was imported; fix or remove them, or import the rest with --skip-rejected", c.Args().Get(0), len(res.Rejected))
				}
				return fmt.Errorf("%s: %d line(s) rejected", c.Args().Get(0), len(res.Rejected))
			}
			return nil
		},
	}
}
