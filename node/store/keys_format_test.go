package store

import (
	"bytes"
	"fmt"
	"math"
	"testing"
)

// TestKeysMatchTheirFormats: the hand-built keys are byte for byte what the
// fmt forms they replaced give, so stores written before read the same.
func TestKeysMatchTheirFormats(t *testing.T) {
	id := "01JQ8Z7K3M4N5P6Q7R8S9T0V1W"
	hash := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for _, v := range []uint64{0, 1, 9, 10, 99, 12345, 1 << 32, 1<<63 - 1, 1 << 63, math.MaxUint64} {
		if got, want := historyKey(id, v, hash), fmt.Appendf(nil, "%s%s/%020d/%s", pfxHistory, id, v, hash); !bytes.Equal(got, want) {
			t.Errorf("historyKey(%d) = %q, want %q", v, got, want)
		}
		if got, want := versionPrefix(id, v), fmt.Appendf(nil, "%s%s/%020d/", pfxHistory, id, v); !bytes.Equal(got, want) {
			t.Errorf("versionPrefix(%d) = %q, want %q", v, got, want)
		}
		if got, want := feedKey(v), fmt.Appendf(nil, "%s%016x", pfxFeed, v); !bytes.Equal(got, want) {
			t.Errorf("feedKey(%d) = %q, want %q", v, got, want)
		}
		if got, err := parseFeedKey(feedKey(v)); err != nil || got != v {
			t.Errorf("parseFeedKey(feedKey(%d)) = %d, %v", v, got, err)
		}
	}
}
