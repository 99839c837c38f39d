package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/inpud/cairn/model"
)

// TestSyncConfigRefusesBadStreamLimits: a per-peer stream limit that is
// not a limit is refused in one sentence naming its option.
func TestSyncConfigRefusesBadStreamLimits(t *testing.T) {
	if err := DefaultSyncConfig().Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*SyncConfig)
	}{
		{"sync-peer-streams", func(c *SyncConfig) { c.Streams.Streams = 0 }},
		{"sync-peer-rate", func(c *SyncConfig) { c.Streams.Rate = -1 }},
		{"sync-peer-burst", func(c *SyncConfig) { c.Streams.Burst = 0 }},
	} {
		c := DefaultSyncConfig()
		tc.edit(&c)
		err := c.Validate()
		var fe *model.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, model.ErrInvalid) {
			t.Fatalf("%s: %v", tc.field, err)
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "default") {
			t.Fatalf("%s: %q is not one sentence saying what is allowed", tc.field, msg)
		}
	}
}
