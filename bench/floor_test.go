package bench

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/store"
)

// The floors are only as good as what they claim to have done: every
// signature checked (a forged one is caught), every record written and
// read back, every byte sealed and opened.
func TestFloorsDoTheWork(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	envs := make([]model.Envelope, n)
	pubs := make([]ed25519.PublicKey, n)
	raws := make([][]byte, n)
	for i := range envs {
		body, _ := json.Marshal(map[string]any{"title": fmt.Sprintf("Peer-run drop-in %d", i), "notes": "open evenings"})
		p := model.Payload{ID: model.NewID(time.Now(), rand.Reader), Kind: model.KindPriority, Origin: "inpud", Author: "12D3KooWLxs",
			Version: 1, HLC: model.MakeHLC(time.Now().UnixMilli(), 0), Audience: model.Audience{model.AudienceMembers}, Body: body}
		if envs[i], err = model.Seal(priv, p); err != nil {
			t.Fatal(err)
		}
		pubs[i] = pub
		if raws[i], err = envs[i].MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := VerifyFloor(pubs, envs); err != nil || f.Took <= 0 {
		t.Fatalf("verify floor of good signatures: %+v, %v", f, err)
	}
	forged := append([]model.Envelope(nil), envs...)
	forged[257].Sig = append([]byte(nil), forged[257].Sig...)
	forged[257].Sig[5] ^= 1
	if _, err := VerifyFloor(pubs, forged); err == nil {
		t.Fatal("the verify floor passed a forged signature")
	}
	written, read, err := StoreFloor(t.TempDir(), store.DefaultConfig().BadgerOptions(), raws, 100)
	if err != nil || written.Took <= 0 || read.Took <= 0 {
		t.Fatalf("store floor: %+v %+v, %v", written, read, err)
	}
	if f, err := OpenFloor(envs); err != nil || f.Took <= 0 {
		t.Fatalf("open floor: %+v, %v", f, err)
	}
	if f, err := SealFloor(raws); err != nil || f.Took <= 0 {
		t.Fatalf("seal floor: %+v, %v", f, err)
	}
}
