package model

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
	"github.com/hdevalence/ed25519consensus"
)

// signedEnvelopes makes n envelopes of ~1.5 KB signed by keys[i%len(keys)].
func signedEnvelopes(t testing.TB, keys []ed25519.PrivateKey, n int) ([]ed25519.PublicKey, []Envelope) {
	t.Helper()
	pubs := make([]ed25519.PublicKey, n)
	envs := make([]Envelope, n)
	for i := range n {
		k := keys[i%len(keys)]
		msg := make([]byte, 1500)
		copy(msg, fmt.Sprintf("envelope %d", i))
		pubs[i] = k.Public().(ed25519.PublicKey)
		envs[i] = Envelope{Payload: msg, Sig: ed25519.Sign(k, msg)}
	}
	return pubs, envs
}

func newKeys(t testing.TB, n int) []ed25519.PrivateKey {
	t.Helper()
	keys := make([]ed25519.PrivateKey, n)
	for i := range keys {
		_, k, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	return keys
}

// A batch of good signatures with one forged among them: exactly the forged
// one is refused, wherever it sits, and all others pass.
func TestVerifyBatchRefusesExactlyTheForged(t *testing.T) {
	keys := newKeys(t, 2)
	for _, bad := range []int{0, 63, 64, 130, 199} {
		t.Run(fmt.Sprint(bad), func(t *testing.T) {
			pubs, envs := signedEnvelopes(t, keys, 200)
			forged := append([]byte(nil), envs[bad].Payload...)
			copy(forged, "forged!") // same signature, other bytes
			envs[bad].Payload = forged
			errs := VerifyBatch(pubs, envs)
			if len(errs) != len(envs) {
				t.Fatalf("%d verdicts for %d envelopes", len(errs), len(envs))
			}
			for i, err := range errs {
				switch {
				case i == bad && !errors.Is(err, ErrBadSignature):
					t.Errorf("forged envelope %d: got %v, want ErrBadSignature", i, err)
				case i != bad && err != nil:
					t.Errorf("good envelope %d refused: %v", i, err)
				}
			}
		})
	}
}

// An order-8 point of Curve25519 in Edwards form (one of the eight points
// of small order).
const smallOrderHex = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"

// torsionSig signs msg with key as Ed25519 does, but adds a point of small
// order to R: valid under ZIP-215 (cofactored), refused by crypto/ed25519
// (cofactorless).
func torsionSig(t testing.TB, key ed25519.PrivateKey, msg []byte) []byte {
	t.Helper()
	hd := sha512.Sum512(key.Seed())
	a, err := new(edwards25519.Scalar).SetBytesWithClamping(hd[:32])
	if err != nil {
		t.Fatal(err)
	}
	rh := sha512.Sum512(append(append([]byte("torsion"), hd[32:]...), msg...))
	r, _ := new(edwards25519.Scalar).SetUniformBytes(rh[:])
	tb, _ := hex.DecodeString(smallOrderHex)
	tp, err := new(edwards25519.Point).SetBytes(tb)
	if err != nil {
		t.Fatal(err)
	}
	R := new(edwards25519.Point).ScalarBaseMult(r)
	R.Add(R, tp)
	rb := R.Bytes()
	kh := sha512.New()
	kh.Write(rb)
	kh.Write(key.Public().(ed25519.PublicKey))
	kh.Write(msg)
	k, _ := new(edwards25519.Scalar).SetUniformBytes(kh.Sum(nil))
	s := new(edwards25519.Scalar).MultiplyAdd(k, a, r)
	return append(rb, s.Bytes()...)
}

func TestSmallOrderPointIsSmall(t *testing.T) {
	b, _ := hex.DecodeString(smallOrderHex)
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Equal(edwards25519.NewIdentityPoint()) == 1 {
		t.Fatal("the small-order point is the identity")
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) != 1 {
		t.Fatal("the small-order point is not of small order")
	}
}

// The rule is ZIP-215's: a signature with a small-order component is valid
// (one at a time and in a batch alike), though crypto/ed25519 refuses it.
func TestVerifyAcceptsTorsionLikeBatch(t *testing.T) {
	keys := newKeys(t, 1)
	pubs, envs := signedEnvelopes(t, keys, 10)
	envs[3].Sig = torsionSig(t, keys[0], envs[3].Payload)
	if ed25519.Verify(pubs[3], envs[3].Payload, envs[3].Sig) {
		t.Fatal("crypto/ed25519 accepts the torsion signature; the test does not test what it claims")
	}
	if err := envs[3].Verify(pubs[3]); err != nil {
		t.Fatalf("single check refuses a ZIP-215-valid signature: %v", err)
	}
	for i, err := range VerifyBatch(pubs, envs) {
		if err != nil {
			t.Errorf("batch refuses envelope %d: %v", i, err)
		}
	}
}

// mutate damages (or, for some cases, keeps valid) one signature or key the
// ways a hostile peer could.
func mutate(t testing.TB, r *mrand.Rand, key ed25519.PrivateKey, pub *ed25519.PublicKey, env *Envelope) string {
	small, _ := hex.DecodeString(smallOrderHex)
	sig := append([]byte(nil), env.Sig...)
	switch c := r.IntN(11); c {
	case 0:
		sig[r.IntN(64)] ^= byte(1 << r.IntN(8))
		env.Sig = sig
		return "flipped bit in sig"
	case 1:
		p := append([]byte(nil), env.Payload...)
		p[r.IntN(len(p))] ^= 1
		env.Payload = p
		return "flipped bit in payload"
	case 2: // s + L: the same signature with s not canonical
		s := new(edwards25519.Scalar)
		if _, err := s.SetCanonicalBytes(sig[32:]); err != nil {
			t.Fatal(err)
		}
		l, _ := hex.DecodeString("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
		var carry uint16
		for i := range 32 {
			v := uint16(sig[32+i]) + uint16(l[i]) + carry
			sig[32+i], carry = byte(v), v>>8
		}
		env.Sig = sig
		return "s not canonical"
	case 3:
		copy(sig[:32], small)
		env.Sig = sig
		return "R of small order"
	case 4:
		*pub = append(ed25519.PublicKey(nil), small...)
		return "key of small order"
	case 5:
		env.Sig = torsionSig(t, key, env.Payload)
		return "torsion component in R (valid)"
	case 6:
		env.Sig = sig[:63]
		return "short sig"
	case 7:
		*pub = (*pub)[:31]
		return "short key"
	case 8: // y = p+1: not a point encoding crypto/ed25519 makes, but decodes
		sig[0], sig[31] = 0xee, 0x7f
		for i := 1; i < 31; i++ {
			sig[i] = 0xff
		}
		env.Sig = sig
		return "R non-canonical"
	case 9:
		sig[63] |= 0xe0
		env.Sig = sig
		return "s high bits set"
	default:
		return "untouched"
	}
}

// Batch and single checks agree on every envelope, over random batches of
// good and damaged signatures under a few keys; and where the batch is all
// valid, ed25519consensus's own BatchVerifier agrees too.
func TestVerifyBatchAgreesWithSingle(t *testing.T) {
	keys := newKeys(t, 3)
	r := mrand.New(mrand.NewPCG(1, 2))
	for round := range 60 {
		n := 1 + r.IntN(150)
		pubs, envs := signedEnvelopes(t, keys, n)
		what := make([]string, n)
		for i := range n {
			what[i] = "good"
			if r.IntN(4) == 0 || round%10 == 0 {
				what[i] = mutate(t, r, keys[i%len(keys)], &pubs[i], &envs[i])
			}
		}
		batch := VerifyBatch(pubs, envs)
		allGood := true
		for i := range n {
			single := envs[i].Verify(pubs[i])
			if (single == nil) != (batch[i] == nil) {
				t.Fatalf("round %d envelope %d (%s): single %v, batch %v", round, i, what[i], single, batch[i])
			}
			if single != nil && !errors.Is(single, ErrBadSignature) {
				t.Fatalf("round %d envelope %d: %v, want ErrBadSignature", round, i, single)
			}
			if ed25519consensus.Verify(pubs[i], envs[i].Payload, envs[i].Sig) != (single == nil) {
				t.Fatalf("round %d envelope %d (%s): Verify disagrees with ed25519consensus", round, i, what[i])
			}
			allGood = allGood && single == nil
		}
		bv := ed25519consensus.NewBatchVerifier()
		for i := range n {
			bv.Add(pubs[i], envs[i].Payload, envs[i].Sig)
		}
		if bv.Verify() != allGood {
			t.Fatalf("round %d: ed25519consensus's batch says %v, single checks say all good = %v", round, !allGood, allGood)
		}
	}
}

func BenchmarkVerifySingle(b *testing.B) {
	pubs, envs := signedEnvelopes(b, newKeys(b, 1), 1)
	for b.Loop() {
		if envs[0].Verify(pubs[0]) != nil {
			b.Fatal("refused")
		}
	}
}

func BenchmarkVerifyBatch(b *testing.B) {
	pubs, envs := signedEnvelopes(b, newKeys(b, 1), 256)
	for b.Loop() {
		for _, err := range VerifyBatch(pubs, envs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(envs))/1e3, "µs/sig")
}

// FuzzVerifyBatch: whatever signature and key bytes a peer sends, the
// batch check's verdict on each envelope of a batch is the single check's.
func FuzzVerifyBatch(f *testing.F) {
	keys := newKeys(f, 1)
	pubs, envs := signedEnvelopes(f, keys, 4)
	small, _ := hex.DecodeString(smallOrderHex)
	f.Add([]byte(pubs[0]), envs[0].Sig, envs[0].Payload)
	f.Add([]byte(pubs[0]), torsionSig(f, keys[0], envs[0].Payload), envs[0].Payload)
	f.Add(small, append(append([]byte(nil), small...), make([]byte, 32)...), []byte("x"))
	f.Add([]byte(pubs[0]), envs[1].Sig, envs[0].Payload)
	f.Fuzz(func(t *testing.T, pub, sig, msg []byte) {
		ps := append([]ed25519.PublicKey(nil), pubs...)
		es := append([]Envelope(nil), envs...)
		ps[2], es[2] = pub, Envelope{Payload: msg, Sig: sig}
		for i, err := range VerifyBatch(ps, es) {
			if single := es[i].Verify(ps[i]); (single == nil) != (err == nil) {
				t.Fatalf("envelope %d: single %v, batch %v", i, single, err)
			}
		}
	})
}
