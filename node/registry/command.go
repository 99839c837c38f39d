package registry

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/inpud/cairn/model"
)

// Kind is what a command does. It travels as its name ("suspend"), never
// as a number, and an unknown name is refused.
type Kind uint8

// The registry's commands. doc.go says who may propose each.
const (
	_ Kind = iota
	Genesis
	CreateInvite
	Join
	AddNodeKey
	RevokeNodeKey
	UpdateNetwork
	Suspend
	Reinstate
	Retire
	Promote
	Demote
	PutTemplate
	SetCustodians
	Handover
	SetAddrs
	kindEnd
)

var kindNames = [kindEnd]string{
	Genesis:       "genesis",
	CreateInvite:  "create-invite",
	Join:          "join",
	AddNodeKey:    "add-node-key",
	RevokeNodeKey: "revoke-node-key",
	UpdateNetwork: "update-network",
	Suspend:       "suspend",
	Reinstate:     "reinstate",
	Retire:        "retire",
	Promote:       "promote",
	Demote:        "demote",
	PutTemplate:   "put-template",
	SetCustodians: "set-custodians",
	Handover:      "handover",
	SetAddrs:      "set-addrs",
}

// Kinds returns every command kind, in declaration order.
func Kinds() []Kind {
	out := make([]Kind, 0, kindEnd-1)
	for k := Genesis; k < kindEnd; k++ {
		out = append(out, k)
	}
	return out
}

// Valid reports whether k is one of the declared kinds.
func (k Kind) Valid() bool { return k > 0 && k < kindEnd }

func (k Kind) String() string {
	if !k.Valid() {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// ParseKind reads a kind's name, e.g. "suspend".
func ParseKind(s string) (Kind, error) {
	for k := Genesis; k < kindEnd; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	names := make([]string, 0, kindEnd-1)
	for k := Genesis; k < kindEnd; k++ {
		names = append(names, kindNames[k])
	}
	return 0, refuse(ErrInvalidCommand, "%q is not a registry command; the commands are %s", truncate(s, 40), strings.Join(names, ", "))
}

// MarshalText writes the kind's name.
func (k Kind) MarshalText() ([]byte, error) {
	if !k.Valid() {
		return nil, refuse(ErrInvalidCommand, "%s is not a registry command", k)
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText reads a kind's name.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// Command is one proposed change to the registry, as signed.
type Command struct {
	Kind Kind `json:"kind"`
	// Proposer is the peer ID of the node that signed the command; its
	// Ed25519 key is inside the ID.
	Proposer string `json:"proposer"`
	// Issued is the proposer's clock when it signed (unix ms). Apply refuses
	// a command issued more than ReplayWindow away from the log's time.
	Issued int64 `json:"issued"`
	// Nonce is random hex that makes every command unique.
	Nonce string `json:"nonce"`
	// Args are the kind's arguments, e.g. NetworkArgs for Suspend.
	Args json.RawMessage `json:"args"`
}

// Arguments of each kind.
type (
	// GenesisArgs create the federation: its first steward network and the
	// templates published with it (templates.Builtin() in practice). The
	// templates travel in the command, not in the code, so every replica
	// builds the same state whatever version of Cairn it runs.
	GenesisArgs struct {
		Network   Profile          `json:"network"`
		Templates []model.Template `json:"templates"`
	}
	// CreateInviteArgs register an invite for a new network.
	CreateInviteArgs struct {
		ID         string  `json:"id"`          // random hex, 16-64 characters
		SecretHash string  `json:"secret_hash"` // HashSecret(secret)
		Network    Profile `json:"network"`
		Role       Role    `json:"role"`
		Expires    int64   `json:"expires"` // unix ms
	}
	// JoinArgs consume an invite; the proposer is the joiner's new key.
	// Addrs are the joiner's listen multiaddrs, so the leader can reach
	// it to replicate the registry before it publishes them itself.
	JoinArgs struct {
		Invite string   `json:"invite"`
		Secret string   `json:"secret"`
		Addrs  []string `json:"addrs,omitempty"`
	}
	// AddNodeKeyArgs register another node for a network.
	AddNodeKeyArgs struct {
		Network string `json:"network"`
		PeerID  string `json:"peer_id"`
	}
	// RevokeNodeKeyArgs revoke a node key.
	RevokeNodeKeyArgs struct {
		PeerID string `json:"peer_id"`
	}
	// UpdateNetworkArgs replace a network's profile; Network.Slug names it.
	UpdateNetworkArgs struct {
		Network Profile `json:"network"`
	}
	// NetworkArgs name the network that Suspend, Reinstate, Retire, Promote
	// and Demote act on.
	NetworkArgs struct {
		Network string `json:"network"`
	}
	// PutTemplateArgs publish a template version.
	PutTemplateArgs struct {
		Template model.Template `json:"template"`
	}
	// SetCustodiansArgs replace the proposer's network's custodians.
	SetCustodiansArgs struct {
		Custodians []string `json:"custodians"`
	}
	// HandoverArgs retire Network and name the steward network that holds
	// its archive. ArchiveKey is the retired network's archive key wrapped
	// with age to every current node key of the steward network (ssh-ed25519
	// recipients, as offline bundles are): only the steward's nodes can
	// unwrap it, and with it open the custody copies. Encodings made before
	// it existed still decode (omitempty); Apply refuses a handover without it.
	HandoverArgs struct {
		Network    string `json:"network"`
		Steward    string `json:"steward"`
		ArchiveKey []byte `json:"archive_key,omitempty"`
	}
	// SetAddrsArgs replace the proposer's own listen multiaddrs.
	SetAddrsArgs struct {
		Addrs []string `json:"addrs"`
	}
)

// newArgs returns a pointer to a zero value of kind k's arguments.
func newArgs(k Kind) any {
	switch k {
	case Genesis:
		return new(GenesisArgs)
	case CreateInvite:
		return new(CreateInviteArgs)
	case Join:
		return new(JoinArgs)
	case AddNodeKey:
		return new(AddNodeKeyArgs)
	case RevokeNodeKey:
		return new(RevokeNodeKeyArgs)
	case UpdateNetwork:
		return new(UpdateNetworkArgs)
	case Suspend, Reinstate, Retire, Promote, Demote:
		return new(NetworkArgs)
	case PutTemplate:
		return new(PutTemplateArgs)
	case SetCustodians:
		return new(SetCustodiansArgs)
	case Handover:
		return new(HandoverArgs)
	case SetAddrs:
		return new(SetAddrsArgs)
	}
	return nil
}

// Limits on what a command may carry.
const (
	// MaxPayload is the largest signed payload, in bytes.
	MaxPayload = model.LimitPayload
	// ReplayWindow is how far a command's Issued time may be from the log's
	// time. Within it, the registry remembers every applied command and
	// refuses it a second time; outside it, the command is refused as stale.
	ReplayWindow = 10 * time.Minute
	// maxDepth bounds the nesting of a payload's JSON.
	maxDepth = 16
	// signedFormat is the first byte of an encoded SignedCommand.
	signedFormat = 1
)

// signContext is prefixed to the payload before signing, so a registry
// signature can never be passed off as a record signature by the same node
// key, or the other way round.
const signContext = "cairn/registry/command/1\x00"

// SignedCommand is a command's payload, exactly as signed, and the
// proposer's Ed25519 signature over it. Nobody re-encodes the payload.
type SignedCommand struct {
	Payload []byte `json:"payload"`
	Sig     []byte `json:"sig"`
}

// Hash is the hex SHA-256 of the payload: the command's identity.
func (sc SignedCommand) Hash() string {
	h := sha256.Sum256(sc.Payload)
	return hex.EncodeToString(h[:])
}

// Sign builds, encodes and signs a command. peerID must be key's peer ID;
// args must be the kind's argument type (value or pointer), e.g.
// Sign(key, id, Suspend, NetworkArgs{Network: "tanpud"}). It reads the
// clock for Issued: the only clock read in this package, and it happens
// on the proposing node, never in Apply.
func Sign(key ed25519.PrivateKey, peerID string, kind Kind, args any) (SignedCommand, error) {
	return SignAt(key, peerID, kind, args, time.Now())
}

// SignAt is Sign with the issue time given.
func SignAt(key ed25519.PrivateKey, peerID string, kind Kind, args any, issued time.Time) (SignedCommand, error) {
	if !kind.Valid() {
		return SignedCommand{}, refuse(ErrInvalidCommand, "%s is not a registry command", kind)
	}
	if len(key) != ed25519.PrivateKeySize {
		return SignedCommand{}, refuse(ErrInvalidCommand, "the signing key is not an Ed25519 private key")
	}
	pub, err := peerKey(peerID)
	if err != nil {
		return SignedCommand{}, err
	}
	if !pub.Equal(key.Public()) {
		return SignedCommand{}, refuse(ErrInvalidCommand, "peer ID %s is not the ID of the signing key", short(peerID))
	}
	want := reflect.TypeOf(newArgs(kind))
	if got := reflect.TypeOf(args); got != want && got != want.Elem() {
		return SignedCommand{}, refuse(ErrInvalidCommand, "%s takes %s, not %v", kind, want.Elem().Name(), got)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return SignedCommand{}, fmt.Errorf("encode %s arguments: %w", kind, err)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return SignedCommand{}, fmt.Errorf("read random nonce: %w", err)
	}
	cmd := Command{Kind: kind, Proposer: peerID, Issued: issued.UnixMilli(), Nonce: hex.EncodeToString(nonce), Args: raw}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return SignedCommand{}, fmt.Errorf("encode %s command: %w", kind, err)
	}
	if len(payload) > MaxPayload {
		return SignedCommand{}, refuse(ErrInvalidCommand, "the %s command is %d bytes long; at most %d are allowed", kind, len(payload), MaxPayload)
	}
	return SignedCommand{Payload: payload, Sig: signPayload(key, payload)}, nil
}

func signPayload(key ed25519.PrivateKey, payload []byte) []byte {
	return ed25519.Sign(key, append([]byte(signContext), payload...))
}

// Open decodes the payload strictly and verifies the signature against the
// proposer's key. It needs no registry: whether the proposer may make the
// change is Apply's question.
func (sc SignedCommand) Open() (Command, error) {
	var c Command
	if len(sc.Payload) == 0 {
		return c, refuse(ErrInvalidCommand, "the command is empty")
	}
	if len(sc.Payload) > MaxPayload {
		return c, refuse(ErrInvalidCommand, "the command is %d bytes long; at most %d are allowed", len(sc.Payload), MaxPayload)
	}
	if len(sc.Sig) != ed25519.SignatureSize {
		return c, refuse(ErrBadSignature, "the command's signature is %d bytes long, not %d", len(sc.Sig), ed25519.SignatureSize)
	}
	if err := strictUnmarshal(sc.Payload, &c); err != nil {
		return Command{}, refuseCause(ErrInvalidCommand, err, "the command is not valid: %v", err)
	}
	if !c.Kind.Valid() {
		return Command{}, refuse(ErrInvalidCommand, "the command has no kind")
	}
	pub, err := peerKey(c.Proposer)
	if err != nil {
		return Command{}, refuseCause(ErrBadSignature, err, "the command's proposer: %v", err)
	}
	if !ed25519.Verify(pub, append([]byte(signContext), sc.Payload...), sc.Sig) {
		return Command{}, refuse(ErrBadSignature, "the %s command's signature does not verify against the key of its proposer %s", c.Kind, short(c.Proposer))
	}
	if len(c.Nonce) < 16 || len(c.Nonce) > 64 || !isLowerHex(c.Nonce) {
		return Command{}, refuse(ErrInvalidCommand, "the command's nonce must be 16 to 64 lower-case hex digits")
	}
	if len(c.Args) == 0 || c.Args[0] != '{' {
		return Command{}, refuse(ErrInvalidCommand, "the %s command's arguments must be a JSON object", c.Kind)
	}
	return c, nil
}

// decodeArgs decodes a command's arguments strictly into its kind's type.
func (c Command) decodeArgs() (any, error) {
	args := newArgs(c.Kind)
	if err := strictUnmarshal(c.Args, args); err != nil {
		return nil, refuseCause(ErrInvalidCommand, err, "the %s command's arguments are not valid: %v", c.Kind, err)
	}
	return reflect.ValueOf(args).Elem().Interface(), nil
}

// EncodeSigned writes a signed command for the Raft log and the wire: a
// format byte (1), the payload's length as a uvarint, the payload, and the
// 64-byte signature.
func EncodeSigned(sc SignedCommand) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(sc.Payload)+len(sc.Sig))
	b = append(b, signedFormat)
	b = binary.AppendUvarint(b, uint64(len(sc.Payload)))
	b = append(b, sc.Payload...)
	return append(b, sc.Sig...)
}

// DecodeSigned reads what EncodeSigned wrote. It checks the framing only;
// Open checks the content.
func DecodeSigned(b []byte) (SignedCommand, error) {
	if len(b) == 0 || b[0] != signedFormat {
		return SignedCommand{}, refuse(ErrInvalidCommand, "the log entry is not a registry command (unknown format)")
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n == 0 || n > MaxPayload {
		return SignedCommand{}, refuse(ErrInvalidCommand, "the log entry is not a registry command (bad payload length)")
	}
	rest := b[1+k:]
	if uint64(len(rest)) != n+ed25519.SignatureSize {
		return SignedCommand{}, refuse(ErrInvalidCommand, "the log entry is not a registry command (%d bytes after the length, want %d)", len(rest), n+ed25519.SignatureSize)
	}
	return SignedCommand{
		Payload: bytes.Clone(rest[:n]),
		Sig:     bytes.Clone(rest[n:]),
	}, nil
}

// strictUnmarshal decodes one JSON value into v, refusing invalid UTF-8,
// duplicate keys (also those differing only in case, which encoding/json
// would merge), nesting deeper than maxDepth, unknown fields and anything
// after the value.
func strictUnmarshal(b []byte, v any) error {
	if !utf8.Valid(b) {
		return errors.New("it is not valid UTF-8")
	}
	if err := checkJSON(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("it has data after its end")
	}
	return nil
}

// checkJSON walks the tokens of one JSON value and refuses duplicate keys,
// deep nesting and trailing data.
func checkJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walkJSON(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("it has data after its end")
	}
	return nil
}

func walkJSON(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("it is not valid JSON: %w", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxDepth {
		return fmt.Errorf("it is nested more than %d levels deep", maxDepth)
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return fmt.Errorf("it is not valid JSON: %w", err)
			}
			key, _ := kt.(string)
			f := foldKey(key)
			if seen[f] {
				return fmt.Errorf("field %q appears twice", truncate(key, 40))
			}
			seen[f] = true
			if err := walkJSON(dec, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := walkJSON(dec, depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return fmt.Errorf("it is not valid JSON: %w", err)
	}
	return nil
}

// foldKey folds a key the way encoding/json matches field names.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune { return unicode.ToUpper(unicode.ToLower(r)) }, s)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// HashSecret is how an invite's one-time secret is stored: the hex SHA-256
// of the secret's bytes. The inviting node puts it in CreateInviteArgs;
// Join carries the secret itself.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}
