package secrets

import (
	"fmt"
	"unicode/utf8"
)

// MinPassphrase is the fewest characters a new passphrase may have.
const MinPassphrase = 12

// CheckNewPassphrase refuses a passphrase too short to protect a key.
func CheckNewPassphrase(p []byte) error {
	if !utf8.Valid(p) {
		return fmt.Errorf("the passphrase is not valid UTF-8 text; type it again or save it as UTF-8")
	}
	if n := utf8.RuneCount(p); n < MinPassphrase {
		return fmt.Errorf("the passphrase has %d characters and needs at least %d; a few unrelated words make a good one", n, MinPassphrase)
	}
	return nil
}
