package sync

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/inpud/cairn/model"
)

// TestPullOwnSendsOnlyTheRequestersOwnRecords: a restoring node's "own"
// request (PullOwn) gets back exactly the versions of its own network's
// records the server holds, none of the server's or a third network's;
// a third network asking "own" gets none of them; a former member is
// refused as for any pull. An ordinary request's frame is unchanged.
func TestPullOwnSendsOnlyTheRequestersOwnRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := newRegistry()
	inpud := newTestNode(t, reg, model.Reader{Network: "inpud", Member: true}, fastPullConfig())
	ehrn := newTestNode(t, reg, model.Reader{Network: "ehrn", Member: true}, fastPullConfig())
	vnpud := newTestNode(t, reg, model.Reader{Network: "vnpud", Member: true}, fastPullConfig())
	for _, n := range []*testNode{inpud, ehrn} {
		for _, o := range []*testNode{inpud, ehrn, vnpud} {
			if n != o {
				n.connect(t, o)
			}
		}
	}
	mine := sorted(ehrn.write(t, "members"), ehrn.write(t, "network:inpud"), ehrn.write(t, "members"))
	ehrn.write(t, "private")
	ehrn.write(t, "network:vnpud")
	theirs := vnpud.write(t, "network:inpud")
	inpud.write(t, "members")
	inpud.write(t, "private")
	for _, from := range []*testNode{ehrn, vnpud} {
		if _, err := inpud.puller.CatchUp(ctx, from.h.ID()); err != nil {
			t.Fatal(err)
		}
	}
	if got := inpud.ids(t, "ehrn"); !slices.Equal(got, mine) {
		t.Fatalf("inpud holds %v of ehrn's, want %v", got, mine)
	}

	idsOf := func(b Batch) []string {
		var out []string
		for _, env := range b.Envelopes {
			p, err := env.Open()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.Origin+"/"+p.ID)
		}
		slices.Sort(out)
		return out
	}
	b, err := PullOwn(ctx, ehrn.h, inpud.h.ID(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, id := range mine {
		want = append(want, "ehrn/"+id)
	}
	if got := idsOf(b); !slices.Equal(got, want) || b.More || b.Last != inpud.st.Head() {
		t.Fatalf("ehrn's own pull from inpud: %v (last %d, more %v), want %v up to inpud's head %d", got, b.Last, b.More, want, inpud.st.Head())
	}
	// From past the server's head: nothing more.
	if b, err := PullOwn(ctx, ehrn.h, inpud.h.ID(), b.Last); err != nil || len(b.Envelopes) != 0 {
		t.Fatalf("own pull after the head: %d envelopes, %v", len(b.Envelopes), err)
	}
	// vnpud's own pull gets its own record back, nothing of ehrn's.
	b, err = PullOwn(ctx, vnpud.h, inpud.h.ID(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := idsOf(b); !slices.Equal(got, []string{"vnpud/" + theirs}) {
		t.Fatalf("vnpud's own pull from inpud: %v, want only its own %s", got, theirs)
	}
	// A former member of ehrn's network is refused, as for any pull.
	reg.mu.Lock()
	reg.readers[ehrn.h.ID()] = model.Reader{Network: "ehrn", Member: false}
	reg.mu.Unlock()
	if _, err := PullOwn(ctx, ehrn.h, inpud.h.ID(), 0); !errors.Is(err, ErrRefused) {
		t.Fatalf("own pull by a former member: %v, want ErrRefused", err)
	}

	// Old frames decode as before, and an ordinary request is the frame it
	// always was, so servers from before "own" still read it.
	var req pullRequest
	if err := decodeRequest([]byte(`{"after":7,"limit":100}`), &req); err != nil || req != (pullRequest{After: 7, Limit: 100}) {
		t.Fatalf("an old request frame decodes to %+v, %v", req, err)
	}
	if b, _ := json.Marshal(pullRequest{After: 7, Limit: 100}); string(b) != `{"after":7,"limit":100}` {
		t.Fatalf("an ordinary request is sent as %s", b)
	}
}
