package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/inpud/cairn/node"
	"github.com/inpud/cairn/node/secrets"
)

// backupParams are the Argon2id costs of new backups. Tests make them
// cheap; nothing else changes them.
var backupParams = secrets.DefaultParams()

func keyCommand() *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "back up the node's keys (node key and archive key) and check a backup",
		Subcommands: []*cli.Command{
			{
				Name:  "backup",
				Usage: "write the node key and the archive key, sealed under a passphrase or split into K-of-N shares",
				UsageText: "cairn key backup --out FILE [--passphrase-file FILE]\n" +
					"cairn key backup --shares N --threshold K --out DIR",
				Description: "With --out FILE alone, the keys are sealed under a passphrase (asked twice, or from\n" +
					"$CAIRN_PASSPHRASE or --passphrase-file). With --shares N --threshold K, they are split\n" +
					"into N share files in DIR, any K of which open them; fewer reveal nothing, and no\n" +
					"passphrase is needed, so the share holders can recover the keys even when nobody\n" +
					"knows the passphrase any more. On a node encrypted at rest the keys open only with\n" +
					"the node's passphrase (asked once, or $CAIRN_PASSPHRASE or --passphrase-file), and a\n" +
					"passphrase backup is sealed under that same passphrase. The node may be running or\n" +
					"stopped. Nothing is ever overwritten.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "out", Usage: "the backup `FILE` to write (with --shares, the DIR for the share files)", Required: true},
					&cli.IntFlag{Name: "shares", Usage: "split into `N` share files (2 to 255)"},
					&cli.IntFlag{Name: "threshold", Usage: "how many shares (`K`, at least 2) together open the keys"},
					passphraseFileFlag(),
				},
				Action: keyBackup,
			},
			{
				Name:  "check",
				Usage: "open a backup or combine shares and say whose keys they are, writing nothing",
				UsageText: "cairn key check BACKUP-FILE [--passphrase-file FILE]\n" +
					"cairn key check SHARE-FILE SHARE-FILE...",
				Description: "Tests a backup without restoring it: opens it (asking for the passphrase) or\n" +
					"combines the shares, says which network and node the keys belong to and whether\n" +
					"they are this data dir's. It writes nothing.",
				Flags:  []cli.Flag{passphraseFileFlag()},
				Action: keyCheck,
			},
		},
	}
}

// keyReport is what `key backup` and `key check` print with --json.
type keyReport struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Network   string    `json:"network"`
	PeerID    string    `json:"peer_id"`
	Created   time.Time `json:"created"`
	Files     []string  `json:"files"`
	Set       string    `json:"set,omitempty"`
	Threshold int       `json:"threshold,omitempty"`
	Shares    int       `json:"shares,omitempty"`
	// MatchesDataDir says whether the keys are the node's in --data-dir;
	// absent when that dir holds no node whose keys could be read.
	MatchesDataDir *bool `json:"matches_data_dir,omitempty"`
}

func keyBackup(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("cairn key backup takes no arguments (got %q); give the file with --out", c.Args().First())
	}
	out := c.String("out")
	n, k := c.Int("shares"), c.Int("threshold")
	split := c.IsSet("shares") || c.IsSet("threshold")
	if split {
		if err := checkShareFlags(c, n, k); err != nil {
			return err
		}
	}
	// On a node encrypted at rest the keys open only with its passphrase;
	// a passphrase backup is then sealed under that same passphrase.
	var nodePass []byte
	if node.Encrypted(dataDir(c)) {
		p, err := readPassphrase(c, false)
		if err != nil {
			return err
		}
		nodePass = p
		defer clear(nodePass)
	}
	keys, err := node.ReadNodeKeys(dataDir(c), nodePass)
	if err != nil {
		return fmt.Errorf("read the node's keys: %w", err)
	}
	secret, err := keys.Encode()
	if err != nil {
		return err
	}
	defer clear(secret)
	owner := secrets.Owner{Network: keys.Network, PeerID: keys.ID.String(), Created: time.Now().UTC().Truncate(time.Second)}
	rep := keyReport{ID: owner.PeerID, Network: owner.Network, PeerID: owner.PeerID, Created: owner.Created}
	if split {
		names := make([]string, n)
		for i := range names {
			names[i] = filepath.Join(out, fmt.Sprintf("%s-key-share-%d-of-%d.txt", keys.Network, i+1, n))
		}
		if fi, err := os.Stat(out); err == nil && !fi.IsDir() {
			return fmt.Errorf("--out %s is a file; with --shares, give a directory for the share files", out)
		}
		if err := refuseExisting(names...); err != nil {
			return err
		}
		files, err := secrets.Split(secret, owner, n, k)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(out, 0o700); err != nil {
			return fmt.Errorf("create the directory for the shares: %w", err)
		}
		if err := writeAllNew(names, files); err != nil {
			return err
		}
		rep.Kind, rep.Files, rep.Threshold, rep.Shares = "shares", names, k, n
		if p, err := secrets.ParseShare(files[0]); err == nil {
			rep.Set = p.Set
		}
	} else {
		if err := refuseExisting(out); err != nil {
			return err
		}
		pass := nodePass
		if pass == nil {
			if pass, err = readPassphrase(c, true); err != nil {
				return err
			}
			defer clear(pass)
		}
		file, err := secrets.Seal(secret, owner, pass, backupParams)
		if err != nil {
			return err
		}
		if err := writeAllNew([]string{out}, [][]byte{file}); err != nil {
			return err
		}
		rep.Kind, rep.Files = "backup", []string{out}
	}
	if wantJSON(c) {
		return printJSON(c.App.Writer, rep)
	}
	w := c.App.Writer
	if split {
		fmt.Fprintf(w, "Split the keys of network %s's node (peer %s) into %d shares of set %s; any %d open them:\n", rep.Network, rep.PeerID, n, rep.Set, k)
		for _, f := range rep.Files {
			fmt.Fprintf(w, "  %s\n", f)
		}
		fmt.Fprintf(w, "Give each share to a different person you trust, and check %d of them with: cairn key check FILE FILE...\n", k)
		return nil
	}
	fmt.Fprintf(w, "Wrote the keys of network %s's node (peer %s) to %s, sealed under your passphrase.\n", rep.Network, rep.PeerID, out)
	fmt.Fprintf(w, "Check it with: cairn key check %s\nKeep the file and the passphrase apart: whoever has both has the node's keys.\n", out)
	return nil
}

func checkShareFlags(c *cli.Context, n, k int) error {
	switch {
	case !c.IsSet("shares"):
		return usageError("--threshold needs --shares N: say how many shares to make")
	case !c.IsSet("threshold"):
		return usageError("--shares needs --threshold K: say how many shares together open the keys")
	case c.IsSet("passphrase-file") && !node.Encrypted(dataDir(c)):
		return usageError("--passphrase-file is not used with --shares: shares need no passphrase, fewer than K of them reveal nothing")
	case n < 2 || n > secrets.MaxShares:
		return usageError("--shares must be from 2 to %d, not %d", secrets.MaxShares, n)
	case k < 2:
		return usageError("--threshold must be at least 2, not %d: with 1, every share holder alone would have the whole key", k)
	case k > n:
		return usageError("--threshold %d is more than --shares %d: nobody could ever combine them", k, n)
	}
	return nil
}

// refuseExisting fails if any of the paths exists: a backup is never
// overwritten.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists: Cairn never overwrites a file; give another --out or move that file away", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	return nil
}

// writeAllNew writes each file (mode 0600, synced), refusing to replace
// one that exists. If one fails, the ones it wrote are removed.
func writeAllNew(paths []string, data [][]byte) error {
	var done []string
	for i, p := range paths {
		if err := writeNew(p, data[i]); err != nil {
			for _, d := range done {
				os.Remove(d)
			}
			return err
		}
		done = append(done, p)
	}
	if d, err := os.Open(filepath.Dir(paths[0])); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return refuseExisting(path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func keyCheck(c *cli.Context) error {
	if c.NArg() == 0 {
		return usageError("cairn key check needs a backup file, or the share files of one set; see: cairn key check --help")
	}
	files := c.Args().Slice()
	data := make([][]byte, len(files))
	kinds := map[secrets.Kind]int{}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read %s: %w", f, err)
		}
		data[i] = b
		kind := secrets.KindOf(b)
		if kind == secrets.KindUnknown {
			if _, err := secrets.ParseShare(b); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
		kinds[kind]++
	}
	var (
		rep    keyReport
		secret []byte
		pass   []byte // a backup's passphrase; on an encrypted node, tried on its keys too
	)
	switch {
	case kinds[secrets.KindBackup] == 1 && len(files) == 1:
		p, err := readPassphrase(c, false)
		if err != nil {
			return err
		}
		pass = p
		defer clear(pass)
		owner, s, err := secrets.Open(data[0], pass)
		if err != nil {
			return fmt.Errorf("%s: %w", files[0], err)
		}
		secret = s
		rep = keyReport{Kind: "backup", Network: owner.Network, PeerID: owner.PeerID, Created: owner.Created}
	case kinds[secrets.KindShare] == len(files):
		var shares []secrets.Share
		for i, b := range data {
			s, err := secrets.ParseShare(b)
			if err != nil {
				return fmt.Errorf("%s: %w", files[i], err)
			}
			s.Name = files[i]
			shares = append(shares, s)
			if !wantJSON(c) {
				fmt.Fprintf(c.App.Writer, "%s: share %d of %d of set %s (network %s, peer %s), intact\n", files[i], s.Index, s.Shares, s.Set, s.Owner.Network, s.Owner.PeerID)
			}
		}
		owner, s, err := secrets.Combine(shares)
		if err != nil {
			return err
		}
		secret = s
		rep = keyReport{Kind: "shares", Network: owner.Network, PeerID: owner.PeerID, Created: owner.Created,
			Set: shares[0].Set, Threshold: shares[0].Threshold, Shares: shares[0].Shares}
	default:
		return usageError("give one passphrase backup on its own, or the share files of one set, not a mix or several backups")
	}
	defer clear(secret)
	keys, err := node.DecodeNodeKeys(secret)
	if err != nil {
		return fmt.Errorf("%s: %w", files[0], err)
	}
	if keys.ID.String() != rep.PeerID || keys.Network != rep.Network {
		return fmt.Errorf("%s: %w: the keys inside are of network %s, peer %s", files[0], secrets.ErrDamaged, keys.Network, keys.ID)
	}
	rep.ID, rep.Files = rep.PeerID, files
	var here node.NodeKeys
	sealedHere := false // the data dir's keys are sealed and did not open
	if node.Initialised(dataDir(c)) {
		if h, err := node.ReadNodeKeys(dataDir(c), pass); err == nil {
			here = h
			same := h.Same(keys)
			rep.MatchesDataDir = &same
		} else if node.Encrypted(dataDir(c)) {
			sealedHere = true
		}
	}
	if wantJSON(c) {
		return printJSON(c.App.Writer, rep)
	}
	w := c.App.Writer
	what := "This backup opens"
	if rep.Kind == "shares" {
		what = strconv.Itoa(len(files)) + " shares combine"
	}
	fmt.Fprintf(w, "%s: the node key and the archive key of network %s, node %s, backed up %s.\n", what, rep.Network, rep.PeerID, rep.Created.Format("2006-01-02 15:04 MST"))
	switch {
	case rep.MatchesDataDir == nil && sealedHere:
		fmt.Fprintf(w, "They were not compared with the keys of the node in %s: that node is encrypted at rest, and its keys open only with its passphrase.\n", dataDir(c))
	case rep.MatchesDataDir == nil:
	case *rep.MatchesDataDir:
		fmt.Fprintf(w, "They are the keys of the node in %s.\n", dataDir(c))
	default:
		fmt.Fprintf(w, "They are NOT the keys of the node in %s (that is node %s of network %s).\n", dataDir(c), here.ID, here.Network)
	}
	return nil
}
