package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// client talks to a running node through its local API, using the address
// and token the node keeps in its data dir.
type client struct {
	dataDir string
	base    string
	token   string
	http    *http.Client
}

// errNoNode is what every command says when no node runs for the data dir.
func errNoNode(dir string) error {
	return fmt.Errorf("no node is running for %s; start one with: cairn start --data-dir %s", dir, dir)
}

func newClient(dataDir string) (*client, error) {
	addr, err := os.ReadFile(filepath.Join(dataDir, "api.addr"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoNode(dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("read the node's API address: %w", err)
	}
	token, err := os.ReadFile(filepath.Join(dataDir, "api.token"))
	if err != nil {
		return nil, fmt.Errorf("read the node's API token (%s): %w", filepath.Join(dataDir, "api.token"), err)
	}
	return &client{
		dataDir: dataDir,
		base:    "http://" + strings.TrimSpace(string(addr)),
		token:   strings.TrimSpace(string(token)),
		http:    &http.Client{Timeout: 10 * time.Minute},
	}, nil
}

// apiError is an error the node answered with.
type apiError struct {
	Status int
	Msg    string
	Field  string
	Body   []byte
}

func (e *apiError) Error() string { return e.Msg }

// do sends a request and decodes a JSON answer into out (when not nil).
// body may be an io.Reader (sent as is) or a value (sent as JSON).
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &op) {
			return errNoNode(c.dataDir)
		}
		return fmt.Errorf("reach the node at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("the node answered %s", resp.Status)
		}
		return &apiError{Status: resp.StatusCode, Msg: e.Error, Field: e.Field, Body: b}
	}
	if out == nil {
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
