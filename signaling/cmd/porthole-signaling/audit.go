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
	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/store"
)

const auditUsage = `usage: porthole-signaling audit verify --data-dir DIR [--redis URL] [--session ID]
       [--anchor FILE]... [--complete] [--json]
(with the embedded store: while the server is stopped)

Verifies audit logs against their hash chains, their signed checkpoints and
the signed heads in the anchor files (by default every audit-anchor*.log in
DIR; --anchor names others, e.g. copies from every node of a cluster): the
administration log, every session's access log, and every log the anchors
name, or one session's. Prints one line per log; exits 1 if any log was
tampered with, naming its first broken entry. --complete says the anchors
hold every head ever signed (implied without --redis), so a checkpoint they
lack is a forgery.
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

// auditedStore wraps st so that its audit appends are signed with the data
// directory's key and anchored in its anchor file ("cli" in a cluster, so
// the command never writes a node's file).
func auditedStore(st fullStore, dataDir string, cluster bool) (fullStore, func(), error) {
	signer, err := auditKey(dataDir, true)
	if err != nil {
		return nil, nil, err
	}
	node := ""
	if cluster {
		node = "cli"
	}
	anchor, created, err := auditlog.OpenAnchor(auditlog.AnchorPath(dataDir, node))
	if err != nil {
		return nil, nil, err
	}
	signer = signer.WithAnchor(anchor)
	if created {
		if _, err := auditlog.Bootstrap(context.Background(), st, signer, time.Now()); err != nil {
			anchor.Close()
			return nil, nil, fmt.Errorf("audit anchor: %w", err)
		}
	}
	return &auditedFull{Store: auditlog.Checkpointed(st, signer, nil), PKI: st}, func() { anchor.Close() }, nil
}

// auditedFull is a checkpointing Store with the PKI of the store beneath.
type auditedFull struct {
	store.Store
	store.PKI
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
	redisURL := fs.String("redis", "", "redis://host:port[/db] (or Sentinel / Redis Cluster URL) of a cluster's store")
	complete := fs.Bool("complete", false, "the anchors hold every head ever signed (implied without --redis)")
	var anchors list
	fs.Var(&anchors, "anchor", "an anchor file to check against (repeatable; default: audit-anchor*.log in --data-dir)")
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
	if len(anchors) == 0 {
		if anchors, err = auditlog.AnchorFiles(*dataDir); err != nil {
			return err
		}
	}
	v := &auditlog.Verifier{Public: signer.Public()}
	if len(anchors) == 0 {
		fmt.Fprintln(out, "warning: no anchor file: the store's own checkpoints are trusted (a rollback of the whole store cannot be seen)")
	} else {
		if v.Heads, err = auditlog.ReadHeads(signer.Public(), anchors...); err != nil {
			return err
		}
		v.Complete = *redisURL == "" || *complete
	}
	var reports []*auditlog.Report
	if *session != "" {
		var want uint64
		if j, err := st.Job(ctx, *session); err == nil {
			want = j.LogSeq
		}
		r, err := v.Verify(ctx, st, store.SessionStream(*session), want)
		if err != nil {
			return err
		}
		reports = []*auditlog.Report{r}
	} else if reports, err = v.VerifyAll(ctx, st); err != nil {
		return err
	}
	bad := 0
	for _, r := range reports {
		stream := r.Stream
		if !r.OK {
			bad++
		}
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintln(out, string(b))
			continue
		}
		switch {
		case !r.OK && r.Broken > 0:
			fmt.Fprintf(out, "BROKEN %s: first broken entry %d: %s\n", stream, r.Broken, r.Problem)
		case !r.OK:
			fmt.Fprintf(out, "BROKEN %s: %s\n", stream, r.Problem)
		case r.Entries == 0:
			fmt.Fprintf(out, "ok     %s: empty\n", stream)
		default:
			fmt.Fprintf(out, "ok     %s: %d entries, chain intact, checkpoint attests %d\n", stream, r.Entries, r.Attested)
		}
	}
	if bad > 0 {
		fmt.Fprintf(out, "%d of %d logs failed verification\n", bad, len(reports))
		return errTampered
	}
	return nil
}
