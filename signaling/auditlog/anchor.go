package auditlog

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/porthole-dev/porthole/signaling/store"
)

// AnchorGlob matches the anchor files in a data directory: one per node
// (AnchorPath), so nodes sharing a directory never write the same file.
const AnchorGlob = "audit-anchor*.log"

// noteName names the audit key in signed notes.
const noteName = "porthole-audit"

// maxAnchorLine bounds one line of an anchor file when reading it.
const maxAnchorLine = 4096

// AnchorPath is the anchor file of node in dataDir ("" for a single node).
func AnchorPath(dataDir, node string) string {
	if node == "" {
		return filepath.Join(dataDir, "audit-anchor.log")
	}
	return filepath.Join(dataDir, "audit-anchor-"+sanitize(node)+".log")
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// Anchor is an append-only file of signed heads, outside the store: each
// line is one checkpoint as a signed note, base64-encoded. Whoever rewrites
// the store cannot rewrite this file's past lines with it; keep it on a
// disk the store's operators cannot write, or make it append-only
// (chattr +a), and copy it off the machine for the strongest guarantee.
type Anchor struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenAnchor opens (creating it, 0600) the anchor file at path for
// appending. Created reports that it did not exist before.
func OpenAnchor(path string) (a *Anchor, created bool, err error) {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("audit anchor: %w", err)
	}
	return &Anchor{path: path, f: f}, errors.Is(statErr, os.ErrNotExist), nil
}

// Path is the anchor file's path.
func (a *Anchor) Path() string { return a.path }

// Close closes the file.
func (a *Anchor) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Close()
}

// headText is what a head's note says. Streams never contain a newline
// (store streams are "admin" and "session/<id>").
func headText(c *store.Checkpoint) string {
	return "porthole audit head v1\n" + c.Stream + "\n" + strconv.FormatUint(c.Seq, 10) + "\n" +
		c.Hash + "\n" + c.Time.UTC().Format(time.RFC3339Nano) + "\n"
}

func (a *Anchor) append(s *Signer, c *store.Checkpoint) error {
	if strings.ContainsAny(c.Stream, "\n\r") {
		return fmt.Errorf("audit anchor: stream %q: %w", c.Stream, store.ErrBadRecord)
	}
	signed, err := note.Sign(&note.Note{Text: headText(c)}, s.noteSigner())
	if err != nil {
		return fmt.Errorf("audit anchor: sign: %w", err)
	}
	line := base64.StdEncoding.EncodeToString(signed) + "\n"
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.f.WriteString(line); err != nil {
		return fmt.Errorf("audit anchor %s: %w", a.path, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("audit anchor %s: %w", a.path, err)
	}
	return nil
}

// noteSigner adapts the audit key to note.Signer.
func (s *Signer) noteSigner() note.Signer {
	v, _ := noteVerifier(s.Public())
	return edSigner{key: s.key, hash: v.KeyHash()}
}

type edSigner struct {
	key  ed25519.PrivateKey
	hash uint32
}

func (edSigner) Name() string                      { return noteName }
func (e edSigner) KeyHash() uint32                 { return e.hash }
func (e edSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(e.key, msg), nil }

func noteVerifier(pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(noteName, pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// Head is one anchored head of a stream.
type Head struct {
	Stream string
	Seq    uint64
	Hash   string
	Time   time.Time
	Where  string // file:line, for reports
}

// Heads are the anchored heads read from anchor files, by stream, and the
// lines that did not verify.
type Heads struct {
	ByStream map[string][]Head
	// Bad describes each line that is not a head signed by the audit key
	// (forged, corrupted or signed with another key).
	Bad []string
}

// Latest returns the anchored head of stream with the highest Seq.
func (h *Heads) Latest(stream string) (Head, bool) {
	var best Head
	ok := false
	for _, x := range h.ByStream[stream] {
		if !ok || x.Seq > best.Seq {
			best, ok = x, true
		}
	}
	return best, ok
}

// ReadHeads reads and verifies every line of the anchor files at paths
// with pub. A missing file is an error: a verifier told to use an anchor
// must not pass because it is gone.
func ReadHeads(pub ed25519.PublicKey, paths ...string) (*Heads, error) {
	v, err := noteVerifier(pub)
	if err != nil {
		return nil, err
	}
	known := note.VerifierList(v)
	h := &Heads{ByStream: map[string][]Head{}}
	for _, path := range paths {
		if err := h.read(path, known); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// AnchorFiles lists the anchor files in dataDir.
func AnchorFiles(dataDir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dataDir, AnchorGlob))
}

func (h *Heads) read(path string, known note.Verifiers) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit anchor: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, maxAnchorLine), maxAnchorLine)
	for n := 1; sc.Scan(); n++ {
		where := fmt.Sprintf("%s:%d", filepath.Base(path), n)
		hd, err := parseHead(sc.Text(), known)
		if err != nil {
			h.Bad = append(h.Bad, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		hd.Where = where
		h.ByStream[hd.Stream] = append(h.ByStream[hd.Stream], hd)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("audit anchor %s: %w", path, err)
	}
	return nil
}

func parseHead(line string, known note.Verifiers) (Head, error) {
	raw, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return Head{}, errors.New("not a base64 note")
	}
	n, err := note.Open(raw, known)
	if err != nil {
		return Head{}, fmt.Errorf("not signed by the audit key: %v", err)
	}
	f := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(f) != 5 || f[0] != "porthole audit head v1" {
		return Head{}, errors.New("not an audit head")
	}
	seq, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return Head{}, errors.New("bad sequence number")
	}
	t, err := time.Parse(time.RFC3339Nano, f[4])
	if err != nil {
		return Head{}, errors.New("bad time")
	}
	return Head{Stream: f[1], Seq: seq, Hash: f[3], Time: t}, nil
}
