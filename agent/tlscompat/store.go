package tlscompat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// ReprobeAfter is how long a remembered rung is trusted: after it, the next
// connection starts from Modern again, so a device whose firmware was
// updated is reached with modern TLS without anyone resetting anything.
const ReprobeAfter = 24 * time.Hour

// Store remembers the rung each device port needs, one small JSON file per
// key in Dir (KEY.tls, mode 0600, written atomically), so an agent that
// restarts does not walk the ladder again. The zero value remembers in
// memory only. Keys are device ids, or "device:port" for ports other
// than the web port.
type Store struct {
	Dir string
	Now func() time.Time // nil: time.Now

	mu  sync.Mutex
	mem map[string]record
}

type record struct {
	Level string    `json:"level"`
	Since time.Time `json:"since"`
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) path(key string) (string, error) {
	if !proto.ValidID(key) {
		return "", fmt.Errorf("tlscompat: invalid key %q", key)
	}
	return filepath.Join(s.Dir, key+".tls"), nil
}

// Start returns the rung a connection to key should start at: the one
// remembered, or Modern when none is, or when it is older than
// ReprobeAfter. A nil Store always starts at Modern.
func (s *Store) Start(key string) Level {
	if s == nil {
		return Modern
	}
	r, ok := s.get(key)
	if !ok || s.now().Sub(r.Since) > ReprobeAfter {
		return Modern
	}
	l, err := ParseLevel(r.Level)
	if err != nil {
		return Modern
	}
	return l
}

func (s *Store) get(key string) (record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Dir == "" {
		r, ok := s.mem[key]
		return r, ok
	}
	p, err := s.path(key)
	if err != nil {
		return record{}, false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return record{}, false
	}
	var r record
	if json.Unmarshal(b, &r) != nil {
		return record{}, false
	}
	return r, true
}

// Remember records that key worked at rung l. Modern is remembered too
// (it resets an older, lower rung).
func (s *Store) Remember(key string, l Level) error {
	if s == nil {
		return nil
	}
	r := record{Level: l.String(), Since: s.now().UTC().Truncate(time.Second)}
	if old, ok := s.get(key); ok && old.Level == r.Level && r.Since.Sub(old.Since) < ReprobeAfter/2 {
		return nil // nothing new; spare the disk
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Dir == "" {
		if s.mem == nil {
			s.mem = map[string]record{}
		}
		s.mem[key] = r
		return nil
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("tlscompat: state directory: %w", err)
	}
	b, _ := json.Marshal(r)
	f, err := os.CreateTemp(s.Dir, ".tls-*")
	if err != nil {
		return fmt.Errorf("tlscompat: remember %s: %w", key, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		return fmt.Errorf("tlscompat: remember %s: %w", key, err)
	}
	return nil
}

// Forget drops what is remembered for key.
func (s *Store) Forget(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Dir == "" {
		delete(s.mem, key)
		return nil
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
