package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/inpud/cairn/model"
)

// testSealer is XChaCha20-Poly1305 under a fixed key: what the node's
// data-key sealer does, without the passphrase.
type testSealer struct{ key []byte }

func newTestSealer() testSealer {
	return testSealer{key: bytes.Repeat([]byte{7}, chacha20poly1305.KeySize)}
}

func (t testSealer) Seal(plain, ad []byte) ([]byte, error) {
	a, err := chacha20poly1305.NewX(t.key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, plain, ad), nil
}

func (t testSealer) Open(sealed, ad []byte) ([]byte, error) {
	a, err := chacha20poly1305.NewX(t.key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < a.NonceSize() {
		return nil, errors.New("too short")
	}
	return a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], ad)
}

// dirHolds reports whether any file under dir contains marker.
func dirHolds(t *testing.T, dir string, marker []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found = found || bytes.Contains(b, marker)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestSealedStore: with a Sealer, record bodies never reach the disk in
// clear, they read back as before (Get, Feed), and a store opened with
// the other setting is refused.
func TestSealedStore(t *testing.T) {
	const marker = "MARKER-harm-reduction-7731"
	for _, sealed := range []bool{false, true} {
		name := "plain"
		if sealed {
			name = "sealed"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig()
			if sealed {
				cfg.Sealer = newTestSealer()
			}
			s, err := Open(dir, cfg)
			if err != nil {
				t.Fatal(err)
			}
			g := newIDGen(t0)
			var envs []envAndID
			for i := 0; i < 20; i++ {
				id := g.next()
				envs = append(envs, envAndID{id, sealRec(t, rec{id: id, note: marker})})
			}
			for _, e := range envs {
				mustPut(t, s, e.env)
			}
			for _, e := range envs {
				st, err := s.Get(e.id)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(st.Payload.Body, []byte(marker)) {
					t.Fatalf("record %s read back without its body", e.id)
				}
			}
			feed, _, err := s.Feed(0, 0)
			if err != nil || len(feed) != len(envs) {
				t.Fatalf("feed: %d entries, %v; want %d", len(feed), err, len(envs))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := dirHolds(t, dir, []byte(marker)); got == sealed {
				t.Fatalf("marker found on disk: %v; sealed store: %v", got, sealed)
			}
			// Reopen the other way round: refused.
			other := testConfig()
			if !sealed {
				other.Sealer = newTestSealer()
			}
			if s2, err := Open(dir, other); err == nil {
				_ = s2.Close()
				t.Fatalf("a %s store opened with the other setting", name)
			} else if sealed && !errors.Is(err, ErrSealed) {
				t.Fatalf("opening a sealed store without a key: %v; want ErrSealed", err)
			}
			s = openStore(t, dir, cfg)
			if _, err := s.Get(envs[3].id); err != nil {
				t.Fatalf("after reopen: %v", err)
			}
		})
	}
}

type envAndID struct {
	id  string
	env model.Envelope
}
