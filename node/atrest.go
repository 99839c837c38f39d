package node

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/inpud/cairn/node/durable"
	"github.com/inpud/cairn/node/secrets"
	"github.com/inpud/cairn/node/store"
)

// Encryption at rest (DESIGN §4, issue 6). A node made with Config.Encrypt
// has a data key: 32 random bytes, kept in the data dir only wrapped under
// the passphrase (datakey.sealed, node/secrets: Argon2id, then
// XChaCha20-Poly1305). The record store seals every history value (the
// envelope, which holds the body) with it; ids, kinds, origins, audiences,
// versions and hashes stay in clear so indexes and sync work without it.
// The node key and the archive key are sealed under it too (keyseal.go).

// dataKeyFile holds the data key sealed under the passphrase.
const dataKeyFile = "datakey.sealed"

// ErrWrongPassphrase: the passphrase does not open the data key.
var ErrWrongPassphrase = errors.New("wrong passphrase")

// ErrNeedPassphrase: the data dir is encrypted and no passphrase was given.
var ErrNeedPassphrase = errors.New("the node's data is encrypted and needs its passphrase")

// Passphrase is a secret that prints, logs and encodes as "(hidden)", so a
// Config can be logged without it.
type Passphrase []byte

func (Passphrase) String() string               { return "(hidden)" }
func (Passphrase) GoString() string             { return "(hidden)" }
func (Passphrase) LogValue() slog.Value         { return slog.StringValue("(hidden)") }
func (Passphrase) MarshalJSON() ([]byte, error) { return []byte(`"(hidden)"`), nil }
func (Passphrase) MarshalText() ([]byte, error) { return []byte("(hidden)"), nil }

// Encrypted reports whether the data dir holds an encrypted node.
func Encrypted(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, dataKeyFile))
	return err == nil
}

// createDataKey makes a new data key and writes it sealed under passphrase.
func createDataKey(dataDir string, owner secrets.Owner, passphrase []byte, p secrets.Params) (*dataKey, error) {
	if err := secrets.CheckNewPassphrase(passphrase); err != nil {
		return nil, err
	}
	key := make([]byte, chacha20poly1305.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("read a random data key: %w", err)
	}
	if err := writeDataKey(dataDir, key, owner, passphrase, p); err != nil {
		return nil, err
	}
	return newDataKey(key)
}

func writeDataKey(dataDir string, key []byte, owner secrets.Owner, passphrase []byte, p secrets.Params) error {
	file, err := secrets.Seal(key, owner, passphrase, p)
	if err != nil {
		return fmt.Errorf("seal the data key: %w", err)
	}
	if err := durable.WriteFile(filepath.Join(dataDir, dataKeyFile), file, 0o600); err != nil {
		return fmt.Errorf("save the sealed data key: %w", err)
	}
	return nil
}

// openDataKey unwraps the data dir's data key with passphrase. It returns
// nil, nil for a data dir that is not encrypted.
func openDataKey(dataDir string, passphrase []byte) (*dataKey, error) {
	_, key, err := readDataKey(dataDir, passphrase)
	if err != nil || key == nil {
		return nil, err
	}
	return newDataKey(key)
}

func readDataKey(dataDir string, passphrase []byte) (secrets.Owner, []byte, error) {
	file, err := os.ReadFile(filepath.Join(dataDir, dataKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return secrets.Owner{}, nil, nil
	}
	if err != nil {
		return secrets.Owner{}, nil, fmt.Errorf("read the sealed data key: %w", err)
	}
	if len(passphrase) == 0 {
		return secrets.Owner{}, nil, fmt.Errorf("%w: give it in a terminal, in CAIRN_PASSPHRASE, or with --passphrase-file", ErrNeedPassphrase)
	}
	owner, key, err := secrets.Open(file, passphrase)
	switch {
	case errors.Is(err, secrets.ErrWrongPassphrase):
		return owner, nil, fmt.Errorf("%w: it does not open the data key of %s; nothing was read", ErrWrongPassphrase, dataDir)
	case err != nil:
		return owner, nil, fmt.Errorf("open the sealed data key %s: %w", filepath.Join(dataDir, dataKeyFile), err)
	case len(key) != chacha20poly1305.KeySize:
		return owner, nil, fmt.Errorf("the sealed data key %s holds %d bytes, not a key of %d: it is damaged", filepath.Join(dataDir, dataKeyFile), len(key), chacha20poly1305.KeySize)
	}
	return owner, key, nil
}

// ChangePassphrase rewraps the data key of a stopped node under a new
// passphrase; the old one stops opening it. The data key itself, and so
// every sealed value, stays the same. It takes the data dir's lock, so it
// refuses while the node runs: the passphrase never travels over the API.
func ChangePassphrase(dataDir string, old, new []byte, p secrets.Params) error {
	if !Encrypted(dataDir) {
		return fmt.Errorf("%s is not encrypted, so it has no passphrase to change", dataDir)
	}
	if err := secrets.CheckNewPassphrase(new); err != nil {
		return err
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return fmt.Errorf("stop the node first, the passphrase changes only while it is stopped: %w", err)
	}
	defer unlock()
	owner, key, err := readDataKey(dataDir, old)
	if err != nil {
		return err
	}
	// A node encrypted before its keys were sealed seals them now, as its
	// next start would. The data key stays the same, so sealed keys stay
	// valid under the new passphrase.
	dk, err := newDataKey(key)
	if err != nil {
		return err
	}
	id, err := loadOrCreateIdentity(dataDir, dk, false)
	if err != nil {
		return err
	}
	if err := sealKeys(dataDir, dk, id.ID.String()); err != nil {
		return err
	}
	return writeDataKey(dataDir, key, owner, new, p)
}

// dataKey is the store's Sealer: XChaCha20-Poly1305 with a random nonce
// per value, the value's key as additional data.
type dataKey struct{ aead cipher.AEAD }

var _ store.Sealer = (*dataKey)(nil)

func newDataKey(key []byte) (*dataKey, error) {
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &dataKey{aead: a}, nil
}

// Seal returns nonce || ciphertext.
func (k *dataKey) Seal(plain, ad []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	out := make([]byte, ns, ns+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("read a random nonce: %w", err)
	}
	return k.aead.Seal(out, out[:ns], plain, ad), nil
}

// Open reverses Seal.
func (k *dataKey) Open(sealed, ad []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < ns+k.aead.Overhead() {
		return nil, errors.New("the sealed value is too short")
	}
	return k.aead.Open(nil, sealed[:ns], sealed[ns:], ad)
}

// Sealed exports. An export of an encrypted node is sealed under its data
// key, and carries the data key wrapped under the passphrase, so it opens
// with the passphrase on any node (the one it was made under: a later
// passphrase change does not reach files already written).
const exportMagic = "cairn sealed export, version 1"

// IsSealedExport reports whether b is a sealed export.
func IsSealedExport(b []byte) bool {
	first, _, _ := bytes.Cut(b, []byte("\n"))
	return string(bytes.TrimSuffix(first, []byte("\r"))) == exportMagic
}

// SealExport seals an export of the node in dataDir.
func SealExport(dataDir string, passphrase, plain []byte) ([]byte, error) {
	owner, key, err := readDataKey(dataDir, passphrase)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("%s is not encrypted, so it has no key to seal an export with", dataDir)
	}
	wrapped, err := os.ReadFile(filepath.Join(dataDir, dataKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read the sealed data key: %w", err)
	}
	k, err := newDataKey(key)
	if err != nil {
		return nil, err
	}
	ct, err := k.Seal(plain, []byte(exportMagic))
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(exportMagic + "\n")
	fmt.Fprintf(&b, "# Records exported by the Cairn node of network %s on %s, sealed. Open it with: cairn import FILE (and the node's passphrase).\n", owner.Network, time.Now().UTC().Format(time.DateOnly))
	b.WriteString(base64.StdEncoding.EncodeToString(wrapped) + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(ct) + "\n")
	return []byte(b.String()), nil
}

// OpenExport opens a file made by SealExport with the passphrase of the
// node that made it.
func OpenExport(file, passphrase []byte) ([]byte, error) {
	lines := strings.Split(strings.ReplaceAll(string(file), "\r\n", "\n"), "\n")
	var parts []string
	for _, l := range lines[1:] {
		if l != "" && !strings.HasPrefix(l, "#") {
			parts = append(parts, l)
		}
	}
	if lines[0] != exportMagic || len(parts) != 2 {
		return nil, errors.New("the file is not a whole sealed export: it is cut short or damaged")
	}
	wrapped, err1 := base64.StdEncoding.DecodeString(parts[0])
	ct, err2 := base64.StdEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil {
		return nil, errors.New("the sealed export is damaged: it is not base64")
	}
	_, key, err := secrets.Open(wrapped, passphrase)
	if errors.Is(err, secrets.ErrWrongPassphrase) {
		return nil, fmt.Errorf("%w: it does not open this export (it needs the passphrase the node had when it wrote the file)", ErrWrongPassphrase)
	}
	if err != nil {
		return nil, fmt.Errorf("open the export's data key: %w", err)
	}
	k, err := newDataKey(key)
	if err != nil {
		return nil, err
	}
	plain, err := k.Open(ct, []byte(exportMagic))
	if err != nil {
		return nil, errors.New("the sealed export is damaged or was changed: it does not decrypt")
	}
	return plain, nil
}

// kdf is the Argon2id cost for sealing the data key.
func (c Config) kdf() secrets.Params {
	if c.KDF == (secrets.Params{}) {
		return secrets.DefaultParams()
	}
	return c.KDF
}
