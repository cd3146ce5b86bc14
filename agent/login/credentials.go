package login

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotSignedIn says the credentials file holds no token for a server.
var ErrNotSignedIn = errors.New("not signed in")

// Token is what `porthole login` keeps for one server.
type Token struct {
	Server      string    `json:"server"` // ServerKey of the signaling URL
	AccessToken string    `json:"accessToken"`
	Scope       string    `json:"scope,omitempty"`
	User        string    `json:"user,omitempty"` // the account's name, for messages
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires,omitzero"` // zero: the server gave no lifetime
	// RevocationEndpoint is where `porthole logout` revokes the token
	// (RFC 7009); empty when the server named none.
	RevocationEndpoint string `json:"revocationEndpoint,omitempty"`
}

// Expired reports whether the token's lifetime is over at now.
func (t *Token) Expired(now time.Time) bool { return !t.Expires.IsZero() && !now.Before(t.Expires) }

// Credentials is the credentials file: one token per server, readable by
// its owner only.
type Credentials struct {
	Path string // e.g. os.UserConfigDir()/porthole/credentials.json
}

type credentialsFile struct {
	Version int               `json:"version"`
	Servers map[string]*Token `json:"servers"`
}

// ServerKey is the key a server's token is stored under: the URL with
// scheme and host in lower case and without a trailing slash, so
// http://Host:8080/ and http://host:8080 share a login.
func ServerKey(server string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("server %q: want an http:// or https:// URL", server)
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.EscapedPath(), "/"), nil
}

func (c Credentials) read() (*credentialsFile, error) {
	f := &credentialsFile{Version: 1, Servers: map[string]*Token{}}
	b, err := os.ReadFile(c.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("read credentials %s: %w", c.Path, err)
	}
	if f.Servers == nil {
		f.Servers = map[string]*Token{}
	}
	return f, nil
}

// write replaces the file atomically; the file is created 0600 in a 0700
// directory and stays 0600 whatever the umask.
func (c Credentials) write(f *credentialsFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(c.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*.json") // 0600
	if err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.Path); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}

// Get returns the token stored for server, or ErrNotSignedIn.
func (c Credentials) Get(server string) (*Token, error) {
	key, err := ServerKey(server)
	if err != nil {
		return nil, err
	}
	f, err := c.read()
	if err != nil {
		return nil, err
	}
	t := f.Servers[key]
	if t == nil || t.AccessToken == "" {
		return nil, fmt.Errorf("%w to %s", ErrNotSignedIn, key)
	}
	return t, nil
}

// Put stores t under its server, replacing an earlier login there.
func (c Credentials) Put(t *Token) error {
	key, err := ServerKey(t.Server)
	if err != nil {
		return err
	}
	f, err := c.read()
	if err != nil {
		return err
	}
	t.Server = key
	f.Servers[key] = t
	return c.write(f)
}

// Delete removes the token of server and reports whether there was one.
func (c Credentials) Delete(server string) (bool, error) {
	key, err := ServerKey(server)
	if err != nil {
		return false, err
	}
	f, err := c.read()
	if err != nil {
		return false, err
	}
	if _, ok := f.Servers[key]; !ok {
		return false, nil
	}
	delete(f.Servers, key)
	return true, c.write(f)
}
