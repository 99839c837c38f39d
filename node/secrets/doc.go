// Package secrets keeps a secret safe outside the node in two ways: sealed
// under a passphrase (Seal, Open), or split into K-of-N shares (Split,
// Combine). `cairn key backup` uses both for the node key and the archive
// key; encryption at rest will reuse Seal for its data key.
//
// # A sealed file ("cairn key backup, version 1")
//
// A text file a person can recognise, in this order:
//
//	cairn key backup, version 1
//	# comment lines a person can read; not part of what is checked
//	{"network":"…","peer_id":"…","created":"…","kdf":"argon2id","argon2":{…},"salt":"…","check":"…","cipher":"xchacha20-poly1305","nonce":"…"}
//	BASE64 CIPHERTEXT
//
// The passphrase and the salt go through Argon2id with the parameters named
// in the header (so they can grow later without breaking old files), giving
// 48 bytes: the first 32 are the XChaCha20-Poly1305 key, the last 16 are
// stored as "check". A wrong passphrase fails the check (ErrWrongPassphrase);
// the right passphrase with a failing AEAD means the file was changed or
// damaged (ErrDamaged). The check lets nobody guess faster than the AEAD
// would: each guess still costs one Argon2id run. The first line and the
// header line, exactly as written, are the AEAD's additional data, so the
// network and peer ID shown in clear cannot be changed unnoticed.
//
// # A share file ("cairn key share, version 1")
//
//	cairn key share, version 1
//	# comment lines
//	{"network":"…","peer_id":"…","created":"…","set":"…","threshold":K,"shares":N,"group":"ristretto255","commitment":[…],"cipher":"xchacha20-poly1305","nonce":"…","sealed":"…","index":I,"value":"…"}
//	checksum SHA256-HEX
//
// Shares are of the secret itself, not of the passphrase-sealed backup. The
// point of K-of-N is that K people can recover the key when nobody has the
// passphrase any more: the network is gone, the one person who knew the
// passphrase left or was arrested, and its custodians must hand its data
// over to a steward. Shares that still needed a passphrase would fail
// exactly then. So a share holder needs no passphrase, and what protects
// the key is that fewer than K shares reveal nothing at all about it.
//
// How: a random Ristretto255 scalar s is split with Shamir's scheme
// (threshold K) by github.com/cloudflare/circl/secretsharing; the secret is
// sealed with XChaCha20-Poly1305 under HKDF-SHA256(s), and every share
// carries that sealed secret, its own point of the polynomial and the
// Feldman commitment to the polynomial. With the commitment, one share can
// be checked on its own (`cairn key check` on a single share says whether it
// is intact and which set it belongs to), a changed share is caught before
// combining, and shares of different sets are told apart by their set id.
//
// Why circl: the Go module proxy offers few Shamir libraries that are kept
// up. hashicorp/vault/shamir lives inside Vault's main module, whose
// requirements would upgrade this module's bbolt, hclog and others;
// lafriks/go-shamir (after codahale/sss) is small but not served with a
// checksum-database entry. Cloudflare's CIRCL is maintained by a
// cryptography team, is used in production, adds one small module to ours
// and needs no upgrade of anything we already use, and its verifiable
// (Feldman) sharing gives the per-share check for free.
package secrets
