package node

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/inpud/cairn/node/durable"
)

// The node's two keys on an encrypted node. identity.key (the node key) and
// archive.key (which opens this network's custody copies) are kept only
// sealed under the data key, as identity.key.sealed and archive.key.sealed:
// whoever takes the disk without the passphrase can neither sign as the node
// nor open the custody copies its custodians hold. A node in clear keeps
// them in clear, as before.
//
// A sealed key file is text:
//
//	cairn sealed key, version 1
//	# comment lines, for people
//	{"key":"identity.key","peer_id":"12D3Koo..."}
//	BASE64(nonce || XChaCha20-Poly1305 ciphertext)
//
// The first line and the header line, exactly as written, are the AEAD's
// additional data: a sealed archive key renamed to identity.key.sealed, or a
// header naming another peer, does not open. The header's peer ID is in
// clear (it is public: the registry lists it), so the node's peer ID reads
// without the passphrase (PeerID); it is authenticated only when the key
// opens.
const (
	sealedKeyMagic  = "cairn sealed key, version 1"
	sealedKeyPrefix = "cairn sealed key, version "
	sealedSuffix    = ".sealed"
)

// sealedKeyHeader is the header line of a sealed key file.
type sealedKeyHeader struct {
	Key    string `json:"key"`     // the clear file's name: identity.key or archive.key
	PeerID string `json:"peer_id"` // the node's peer ID
}

// keyNames are the key files that an encrypted node keeps only sealed.
var keyNames = []string{identityFile, archiveKeyFile}

// keyWhat names a key file in messages.
func keyWhat(name string) string {
	if name == archiveKeyFile {
		return "archive key"
	}
	return "node key"
}

// sealKeyFile seals raw, the bytes of the clear file name, under dk.
func sealKeyFile(name string, raw []byte, peerID string, dk *dataKey) ([]byte, error) {
	hj, err := json.Marshal(sealedKeyHeader{Key: name, PeerID: peerID})
	if err != nil {
		return nil, fmt.Errorf("encode the header of %s: %w", name+sealedSuffix, err)
	}
	ct, err := dk.Seal(raw, []byte(sealedKeyMagic+"\n"+string(hj)+"\n"))
	if err != nil {
		return nil, fmt.Errorf("seal the %s: %w", keyWhat(name), err)
	}
	var b strings.Builder
	b.WriteString(sealedKeyMagic + "\n")
	fmt.Fprintf(&b, "# The %s of this Cairn node, sealed under its data key (%s), which opens only with the node's passphrase.\n", keyWhat(name), dataKeyFile)
	b.WriteString(string(hj) + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(ct) + "\n")
	return []byte(b.String()), nil
}

// parseSealedKey splits a sealed key file into its header, the bytes the
// AEAD authenticates and the ciphertext. path is for messages.
func parseSealedKey(path string, file []byte) (sealedKeyHeader, []byte, []byte, error) {
	var lines []string
	for i, l := range strings.Split(strings.ReplaceAll(string(file), "\r\n", "\n"), "\n") {
		if i > 0 && (strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "") {
			continue
		}
		lines = append(lines, l)
	}
	var h sealedKeyHeader
	switch {
	case lines[0] != sealedKeyMagic && strings.HasPrefix(lines[0], sealedKeyPrefix):
		return h, nil, nil, fmt.Errorf("%s was written by a newer version of Cairn (%q); run that version", path, lines[0])
	case lines[0] != sealedKeyMagic:
		return h, nil, nil, fmt.Errorf("%s is not a sealed key file (its first line should be %q): it is damaged; restore the node from its key backup", path, sealedKeyMagic)
	case len(lines) != 3:
		return h, nil, nil, fmt.Errorf("%s is cut short or damaged; restore the node from its key backup", path)
	}
	if err := json.Unmarshal([]byte(lines[1]), &h); err != nil {
		return h, nil, nil, fmt.Errorf("%s is damaged (its header does not read); restore the node from its key backup", path)
	}
	ct, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		return h, nil, nil, fmt.Errorf("%s is damaged (not base64); restore the node from its key backup", path)
	}
	return h, []byte(lines[0] + "\n" + lines[1] + "\n"), ct, nil
}

// openKeyFile opens a sealed key file with the data key and checks that it
// is the file of that name.
func openKeyFile(path, name string, file []byte, dk *dataKey) ([]byte, sealedKeyHeader, error) {
	h, ad, ct, err := parseSealedKey(path, file)
	if err != nil {
		return nil, h, err
	}
	if h.Key != name {
		return nil, h, fmt.Errorf("%s holds the sealed %s, not the %s: the key files were mixed up; restore the node from its key backup", path, h.Key, keyWhat(name))
	}
	raw, err := dk.Open(ct, ad)
	if err != nil {
		return nil, h, fmt.Errorf("%s does not open with this node's data key: it was changed or damaged, or belongs to another data dir; restore the node from its key backup", path)
	}
	return raw, h, nil
}

// readKey reads the bytes of the key file name in dir. With a data key it
// reads the sealed file, or, on a node encrypted before keys were sealed,
// the clear one (sealKeys then seals it). Without one it reads the clear
// file. An error wraps fs.ErrNotExist when there is neither.
func readKey(dir, name string, dk *dataKey) ([]byte, error) {
	clearPath := filepath.Join(dir, name)
	if dk != nil {
		raw, err := readSealedKey(dir, name, dk)
		if !errors.Is(err, fs.ErrNotExist) {
			return raw, err
		}
	}
	b, err := os.ReadFile(clearPath)
	if errors.Is(err, fs.ErrNotExist) && dk != nil {
		// sealKeys may have sealed and removed it since the first look.
		return readSealedKey(dir, name, dk)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", keyWhat(name), clearPath, err)
	}
	if fi, err := os.Stat(clearPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s can be read by other users (mode %v); make it private with: chmod 600 %s", keyWhat(name), clearPath, fi.Mode().Perm(), clearPath)
	}
	return b, nil
}

func readSealedKey(dir, name string, dk *dataKey) ([]byte, error) {
	path := filepath.Join(dir, name+sealedSuffix)
	file, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sealed %s %s: %w", keyWhat(name), path, err)
	}
	raw, _, err := openKeyFile(path, name, file, dk)
	return raw, err
}

// writeKey saves raw as the key file name: sealed under dk when there is
// one, in clear otherwise; atomically and durably either way.
func writeKey(dir, name string, raw []byte, peerID string, dk *dataKey) error {
	if dk == nil {
		if err := durable.WriteFile(filepath.Join(dir, name), raw, 0o600); err != nil {
			return fmt.Errorf("save %s: %w", keyWhat(name), err)
		}
		return nil
	}
	file, err := sealKeyFile(name, raw, peerID, dk)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(dir, name+sealedSuffix), file, 0o600); err != nil {
		return fmt.Errorf("save sealed %s: %w", keyWhat(name), err)
	}
	return nil
}

// sealKeys seals the clear key files of an encrypted node, made before its
// keys were sealed (or left by an init that stopped half-way), and removes
// them once the sealed ones are durable. A sealed file already there (a
// seal that stopped before the clear file was removed) must hold the same
// key. The caller holds the data dir's lock.
func sealKeys(dir string, dk *dataKey, peerID string) error {
	sealedAny := false
	for _, name := range keyNames {
		clearPath := filepath.Join(dir, name)
		raw, err := os.ReadFile(clearPath)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s %s to seal it: %w", keyWhat(name), clearPath, err)
		}
		held, err := readSealedKey(dir, name, dk)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := writeKey(dir, name, raw, peerID, dk); err != nil {
				return err
			}
			// Read it back: the clear file goes only once the sealed one opens.
			if held, err = readSealedKey(dir, name, dk); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if subtle.ConstantTimeCompare(held, raw) != 1 {
			return fmt.Errorf("%s and %s hold different keys; the node does not know which is its own: keep the one of your key backup (cairn key check) and move the other away", clearPath, clearPath+sealedSuffix)
		}
		if err := os.Remove(clearPath); err != nil {
			return fmt.Errorf("remove %s %s now that it is sealed: %w", keyWhat(name), clearPath, err)
		}
		sealedAny = true
	}
	if !sealedAny {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync data dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync data dir %s: %w", dir, err)
	}
	return nil
}

// sealedPeerID reads the peer ID in the header of a sealed node key,
// without the passphrase. It is not authenticated. An error wraps
// fs.ErrNotExist when there is no sealed node key.
func sealedPeerID(dir string) (peer.ID, error) {
	path := filepath.Join(dir, identityFile+sealedSuffix)
	file, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read sealed node key %s: %w", path, err)
	}
	h, _, _, err := parseSealedKey(path, file)
	if err != nil {
		return "", err
	}
	id, err := peer.Decode(h.PeerID)
	if err != nil {
		return "", fmt.Errorf("%s is damaged (its header names no peer ID); restore the node from its key backup", path)
	}
	return id, nil
}
