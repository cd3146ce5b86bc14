package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/store"
)

const auditUsage = `usage: porthole-signaling audit verify --data-dir DIR [--redis URL] [--session ID] [--json]
(with the embedded store: while the server is stopped)

Verifies audit logs against their hash chains and signed checkpoints: the
administration log and every session's access log, or one session's. Prints
one line per log; exits 1 if any log was tampered with, naming its first
broken entry.
`

// auditKey opens (creating it on first use) the checkpoint signing key in
// the data directory.
func auditKey(dataDir string, create bool) (*auditlog.Signer, error) {
	key, err := auditlog.LoadKey(filepath.Join(dataDir, auditlog.KeyFile), create)
	if err != nil {
		return nil, err
	}
	return auditlog.NewSigner(key), nil
}

// errTampered makes the command exit 1 after printing its findings.
var errTampered = errors.New("audit log verification failed")

// audit runs `porthole-signaling audit verify …`.
func audit(args []string, out io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(out, auditUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprint(os.Stderr, auditUsage)
		return errors.New("unknown command")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, auditUsage) }
	dataDir := fs.String("data-dir", "", "directory of the embedded store (required)")
	session := fs.String("session", "", "verify only this session's access log")
	asJSON := fs.Bool("json", false, "print one JSON report per line")
	redisURL := fs.String("redis", "", "redis://host:port[/db] of a cluster's store")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dataDir == "" {
		return errors.New("--data-dir is required")
	}
	if *session != "" && !proto.ValidSessionID(*session) {
		return fmt.Errorf("--session %q is not a session ID", *session)
	}
	signer, err := auditKey(*dataDir, false)
	if err != nil {
		return err
	}
	st, err := openStore(*dataDir, *redisURL)
	if err != nil {
		return fmt.Errorf("%w (is porthole-signaling running on this data directory?)", err)
	}
	defer st.Close()
	ctx := context.Background()
	var streams []string
	if *session != "" {
		streams = []string{store.SessionStream(*session)}
	} else {
		streams = []string{accounts.AuditStream}
		jobs, err := st.Jobs(ctx, time.Time{}, 0)
		if err != nil {
			return err
		}
		for i := len(jobs) - 1; i >= 0; i-- { // oldest first
			streams = append(streams, store.SessionStream(jobs[i].ID))
		}
	}
	bad := 0
	for _, stream := range streams {
		r, err := auditlog.Verify(ctx, st, signer.Public(), stream)
		if err != nil {
			return fmt.Errorf("verify %s: %w", stream, err)
		}
		if !r.OK {
			bad++
		}
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintln(out, string(b))
			continue
		}
		switch {
		case !r.OK:
			fmt.Fprintf(out, "BROKEN %s: first broken entry %d: %s\n", stream, r.Broken, r.Problem)
		case r.Attested == 0 && r.Entries > 0:
			fmt.Fprintf(out, "ok     %s: %d entries, chain intact (no checkpoint: a cut tail cannot be ruled out)\n", stream, r.Entries)
		default:
			fmt.Fprintf(out, "ok     %s: %d entries, chain intact, checkpoint attests %d\n", stream, r.Entries, r.Attested)
		}
	}
	if bad > 0 {
		fmt.Fprintf(out, "%d of %d logs failed verification\n", bad, len(streams))
		return errTampered
	}
	return nil
}
