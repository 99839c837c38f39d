package secrets

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Params are Argon2id's costs. They are written in every sealed file, so
// DefaultParams can grow as machines do and old files still open.
type Params struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultParams cost about half a second and 128 MiB on a small server
// (RFC 9106 recommends at least 64 MiB for Argon2id).
func DefaultParams() Params { return Params{Time: 3, MemoryKiB: 128 << 10, Threads: 2} }

// Limits on the parameters a file may ask for, so a damaged or hostile
// header cannot make Open use all the memory or run for hours.
const (
	maxTime      = 64
	maxMemoryKiB = 4 << 20 // 4 GiB
)

func (p Params) valid() bool {
	return p.Time >= 1 && p.Time <= maxTime && p.Threads >= 1 &&
		p.MemoryKiB >= 8*uint32(p.Threads) && p.MemoryKiB <= maxMemoryKiB
}

const (
	kdfName    = "argon2id"
	cipherName = "xchacha20-poly1305"
	saltSize   = 16
	checkSize  = 16
)

// backupHeader is the header line of a sealed file.
type backupHeader struct {
	Owner
	KDF    string `json:"kdf"`
	Argon2 Params `json:"argon2"`
	Salt   []byte `json:"salt"`
	Check  []byte `json:"check"`
	Cipher string `json:"cipher"`
	Nonce  []byte `json:"nonce"`
}

// derive runs Argon2id: the AEAD key, then the passphrase check.
func derive(passphrase, salt []byte, p Params) (key, check []byte) {
	out := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize+checkSize)
	return out[:chacha20poly1305.KeySize], out[chacha20poly1305.KeySize:]
}

// Seal encrypts secret under passphrase and returns the whole file. The
// owner is written in clear and authenticated. The caller checks the
// passphrase's strength (CheckNewPassphrase).
func Seal(secret []byte, owner Owner, passphrase []byte, p Params) ([]byte, error) {
	if !p.valid() {
		return nil, fmt.Errorf("argon2id parameters %+v are out of range", p)
	}
	h := backupHeader{Owner: owner, KDF: kdfName, Argon2: p, Cipher: cipherName,
		Salt: make([]byte, saltSize), Nonce: make([]byte, chacha20poly1305.NonceSizeX)}
	if _, err := rand.Read(h.Salt); err != nil {
		return nil, fmt.Errorf("read random salt: %w", err)
	}
	if _, err := rand.Read(h.Nonce); err != nil {
		return nil, fmt.Errorf("read random nonce: %w", err)
	}
	key, check := derive(passphrase, h.Salt, p)
	h.Check = check
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode backup header: %w", err)
	}
	f := parsed{magic: backupMagic, header: string(hj)}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	ct := aead.Seal(nil, h.Nonce, secret, f.signed())
	var b strings.Builder
	b.WriteString(backupMagic + "\n")
	fmt.Fprintf(&b, "# The keys of the Cairn node of network %s (peer %s), sealed under a passphrase.\n", owner.Network, owner.PeerID)
	b.WriteString("# Check it with: cairn key check FILE. Keep it apart from the passphrase.\n")
	b.WriteString(f.header + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(ct) + "\n")
	return []byte(b.String()), nil
}

// Inspect reads whose backup a sealed file is without opening it. The
// answer is not authenticated until Open succeeds.
func Inspect(file []byte) (Owner, error) {
	h, _, err := readBackup(file)
	return h.Owner, err
}

func readBackup(file []byte) (backupHeader, parsed, error) {
	f, err := parse(file, backupMagic)
	if err != nil {
		return backupHeader{}, f, err
	}
	var h backupHeader
	if err := json.Unmarshal([]byte(f.header), &h); err != nil {
		return h, f, ErrDamaged
	}
	if h.KDF != kdfName || h.Cipher != cipherName || !h.Argon2.valid() || len(h.Salt) != saltSize ||
		len(h.Check) != checkSize || len(h.Nonce) != chacha20poly1305.NonceSizeX || len(f.rest) != 1 {
		return h, f, ErrDamaged
	}
	return h, f, nil
}

// Open decrypts a file made by Seal. A wrong passphrase gives
// ErrWrongPassphrase; a file cut short, changed or damaged gives
// ErrDamaged; another kind of file says so.
func Open(file, passphrase []byte) (Owner, []byte, error) {
	h, f, err := readBackup(file)
	if err != nil {
		return Owner{}, nil, err
	}
	ct, err := base64.StdEncoding.DecodeString(f.rest[0])
	if err != nil {
		return Owner{}, nil, ErrDamaged
	}
	key, check := derive(passphrase, h.Salt, h.Argon2)
	if subtle.ConstantTimeCompare(check, h.Check) != 1 {
		return Owner{}, nil, ErrWrongPassphrase
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return Owner{}, nil, err
	}
	secret, err := aead.Open(nil, h.Nonce, ct, f.signed())
	if err != nil {
		return Owner{}, nil, ErrDamaged
	}
	return h.Owner, secret, nil
}
