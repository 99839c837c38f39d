package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node"
)

func bundleCommand() *cli.Command {
	return &cli.Command{
		Name:      "bundle",
		Usage:     "write an offline bundle for one network (USB stick, messenger): signed, encrypted to its nodes, only what is new",
		UsageText: "cairn bundle --to SLUG [--since SEQ] --out F",
		Description: "The bundle holds what network SLUG may see (what sync would send it), signed by this node and\n" +
			"encrypted so only SLUG's nodes can open it. Without --since it starts after the last\n" +
			"acknowledgement SLUG sent back (cairn import ACK); --since 0 sends everything again.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "the network the bundle is for (its slug)", Required: true},
			&cli.StringFlag{Name: "since", Usage: "start after this feed seq (default: the last acknowledged one)"},
			&cli.StringFlag{Name: "out", Usage: "the file to write (it must not exist yet)", Required: true},
		},
		Action: func(c *cli.Context) error {
			q := url.Values{"to": {c.String("to")}}
			if s := c.String("since"); s != "" {
				if v, err := strconv.ParseUint(s, 10, 63); err != nil {
					return usageError("--since: %q is not a feed seq: use a whole number, 0 or more", s)
				} else {
					q.Set("since", strconv.FormatUint(v, 10))
				}
			}
			out := c.String("out")
			if _, err := os.Lstat(out); err == nil {
				return fmt.Errorf("--out: %s already exists; choose a new file name so nothing is overwritten", out)
			}
			cl, err := connect(c)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := cl.do(c.Context, "GET", "/v1/bundle?"+q.Encode(), nil, &buf); err != nil {
				return err
			}
			h, err := bundleHeader(buf.Bytes())
			if err != nil {
				return err
			}
			if err := writeNew(out, buf.Bytes()); err != nil {
				return err
			}
			if wantJSON(c) {
				return printJSON(c.App.Writer, map[string]any{"id": out, "file": out, "to": h.To, "count": h.Count, "since": h.Since, "upto": h.Upto, "bytes": buf.Len()})
			}
			fmt.Fprintf(c.App.Writer, "wrote %s: %d record(s) for %s, feed seq %d to %d (%d bytes)\n", out, h.Count, h.To, h.Since+1, h.Upto, buf.Len())
			return nil
		},
	}
}

// bundleHeader reads the header line of a bundle (its second line).
func bundleHeader(b []byte) (node.BundleHeader, error) {
	var h node.BundleHeader
	lines := bytes.SplitN(b, []byte("\n"), 3)
	if len(lines) < 3 || string(lines[0]) != node.BundleMagic {
		return h, errors.New("the node answered something that is not a bundle")
	}
	if err := json.Unmarshal(lines[1], &h); err != nil {
		return h, fmt.Errorf("read the bundle's header: %w", err)
	}
	return h, nil
}

// isBundleFile reports whether f starts like a bundle, and rewinds it.
func isBundleFile(f *os.File) (bool, error) {
	head := make([]byte, len(node.BundleMagic)+1)
	k, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return node.IsBundle(head[:k]), nil
}

// importBundle imports the bundle in f: records (writing the
// acknowledgement to ackOut, or next to f) or an acknowledgement.
func importBundle(ctx context.Context, c *cli.Context, cl *client, f *os.File, ackOut string) error {
	var res struct {
		Result node.BundleResult `json:"result"`
		Ack    []byte            `json:"ack"`
	}
	if err := cl.do(ctx, "POST", "/v1/bundle/import", f, &res); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	r, h := res.Result, res.Result.Header
	if h.Kind == node.BundleAck {
		if wantJSON(c) {
			return printJSON(c.App.Writer, map[string]any{"id": f.Name(), "kind": h.Kind, "from": h.From, "upto": h.Upto, "recorded": r.AckRecorded, "gap": r.Gap, "acked": r.Acked})
		}
		switch {
		case r.AckRecorded:
			fmt.Fprintf(c.App.Writer, "acknowledgement from %s recorded: it holds everything up to feed seq %d; the next bundle to %s starts after it\n", h.From, h.Upto, h.From)
		case r.Gap:
			fmt.Fprintf(c.App.Writer, "acknowledgement from %s (feed seq %d to %d) not recorded: the one for the bundle before it (from seq %d) has not come back; the next bundle to %s starts after seq %d\n", h.From, h.Since+1, h.Upto, r.Acked+1, h.From, r.Acked)
		default:
			fmt.Fprintf(c.App.Writer, "acknowledgement from %s (feed seq %d) changes nothing: a later one is recorded already\n", h.From, h.Upto)
		}
		return nil
	}
	if ackOut == "" {
		ackOut = f.Name() + ".ack"
	}
	if err := os.WriteFile(ackOut+".tmp", res.Ack, 0o600); err != nil {
		return fmt.Errorf("write the acknowledgement %s: %w", ackOut, err)
	}
	if err := os.Rename(ackOut+".tmp", ackOut); err != nil {
		return fmt.Errorf("write the acknowledgement %s: %w", ackOut, err)
	}
	if wantJSON(c) {
		return printJSON(c.App.Writer, map[string]any{"id": f.Name(), "kind": h.Kind, "from": h.From, "count": h.Count,
			"stored": r.Stored, "duplicates": r.Duplicates, "older": r.Older, "since": h.Since, "upto": h.Upto, "ack": ackOut})
	}
	fmt.Fprintf(c.App.Writer, "imported bundle from %s (feed seq %d to %d): stored %d, already held %d\n", h.From, h.Since+1, h.Upto, r.Stored, r.Duplicates)
	if r.Older > 0 {
		fmt.Fprintf(c.App.Writer, "%d older version(s) passed over: this node holds newer ones\n", r.Older)
	}
	if r.Stored == 0 {
		fmt.Fprintln(c.App.Writer, "nothing changed: this node held every record of the bundle already")
	}
	fmt.Fprintf(c.App.Writer, "acknowledgement written to %s: carry it back to %s and run there: cairn import %s\n", ackOut, h.From, filepath.Base(ackOut))
	return nil
}
