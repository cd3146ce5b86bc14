package deviceproxy

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// MaxCookies bounds a session's jar; past it, the cookie that expires first
// (or was stored first) makes room, so a device cannot grow the agent.
const MaxCookies = 128

// jar holds the cookies the device set during one session. Browsers cannot
// let a service worker set cookies, and HttpOnly cookies must never reach
// the page, so the agent keeps them: they are sent back on every request of
// the session to the same device and never leave the agent.
//
// The device is one host, so Domain attributes only decide whether a cookie
// is accepted (it must domain-match the host); every cookie is treated as
// host-only. Paths, expiry and Secure are honoured.
type jar struct {
	host   string // host name the device is reached by (no port)
	secure bool   // https device

	mu      sync.Mutex
	seq     uint64
	cookies map[jarKey]*jarCookie
}

type jarKey struct{ name, path string }

type jarCookie struct {
	value    string
	httpOnly bool
	secure   bool
	expires  time.Time // zero: session cookie
	seq      uint64    // creation order, for eviction and ordering
}

func newJar(host string, secure bool) *jar {
	return &jar{host: strings.ToLower(host), secure: secure, cookies: map[jarKey]*jarCookie{}}
}

// store records the response's Set-Cookie fields for a request to
// reqPath and returns the "name=value" pairs the browser may mirror (the
// non-HttpOnly cookies this response set) and the names of the cookies it
// deleted that the browser may hold: any but those the jar held as
// HttpOnly (the page never saw those; a page cookie of the same name is
// its own, as document.cookie could not have replaced an HttpOnly one).
func (j *jar) store(resp []*http.Cookie, reqPath string, now time.Time) (mirror, deleted []string) {
	if len(resp) == 0 {
		return nil, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range resp {
		if c.Name == "" || !j.domainOK(c.Domain) {
			continue
		}
		if c.Secure && !j.secure {
			continue // a browser refuses Secure cookies from an http origin
		}
		path := c.Path
		if path == "" || path[0] != '/' {
			path = defaultPath(reqPath)
		}
		k := jarKey{c.Name, path}
		var exp time.Time
		switch {
		case c.MaxAge < 0:
			exp = now.Add(-time.Second)
		case c.MaxAge > 0:
			exp = now.Add(time.Duration(c.MaxAge) * time.Second)
		case !c.Expires.IsZero():
			exp = c.Expires
		}
		if !exp.IsZero() && !exp.After(now) {
			if old := j.cookies[k]; (old == nil || !old.httpOnly) && !slices.Contains(deleted, c.Name) {
				deleted = append(deleted, c.Name)
			}
			delete(j.cookies, k)
			continue
		}
		old := j.cookies[k]
		seq := j.seq
		if old != nil {
			seq = old.seq // replacing keeps the original creation order (RFC 6265 5.3)
		} else {
			j.seq++
			if len(j.cookies) >= MaxCookies {
				j.evictLocked(now)
			}
		}
		j.cookies[k] = &jarCookie{value: c.Value, httpOnly: c.HttpOnly, secure: c.Secure, expires: exp, seq: seq}
		if !c.HttpOnly {
			mirror = append(mirror, c.Name+"="+c.Value)
		}
	}
	return mirror, deleted
}

func (j *jar) evictLocked(now time.Time) {
	var victim jarKey
	var best *jarCookie
	for k, c := range j.cookies {
		if !c.expires.IsZero() && !c.expires.After(now) {
			delete(j.cookies, k)
			return
		}
		if best == nil || c.seq < best.seq {
			victim, best = k, c
		}
	}
	if best != nil {
		delete(j.cookies, victim)
	}
}

// header merges the jar with the Cookie header the browser sent (cookies
// the page's scripts set, and the mirrored ones) into the Cookie value for
// a request to reqPath. A page cookie never overrides an HttpOnly cookie of
// the jar, as document.cookie cannot in a browser; otherwise the page's
// value wins, because its scripts may have changed a mirrored cookie.
func (j *jar) header(reqPath, fromPage string, now time.Time) string {
	type pair struct {
		name, value string
		pathLen     int
		seq         uint64
	}
	var out []pair
	locked := map[string]bool{}
	j.mu.Lock()
	for k, c := range j.cookies {
		if !c.expires.IsZero() && !c.expires.After(now) {
			delete(j.cookies, k)
			continue
		}
		if !pathMatch(reqPath, k.path) {
			continue
		}
		out = append(out, pair{k.name, c.value, len(k.path), c.seq})
		if c.httpOnly {
			locked[k.name] = true
		}
	}
	j.mu.Unlock()
	// RFC 6265 5.4: longer paths first, then earlier creation.
	slices.SortFunc(out, func(a, b pair) int {
		if a.pathLen != b.pathLen {
			return b.pathLen - a.pathLen
		}
		return int(a.seq) - int(b.seq)
	})
	if fromPage != "" {
		page, err := http.ParseCookie(fromPage)
		if err == nil {
			for _, pc := range page {
				if locked[pc.Name] {
					continue
				}
				replaced := false
				for i := range out {
					if out[i].name == pc.Name {
						out[i].value = pc.Value
						replaced = true
						break
					}
				}
				if !replaced {
					out = append(out, pair{name: pc.Name, value: pc.Value, seq: ^uint64(0)})
				}
			}
		}
	}
	var b strings.Builder
	for i, p := range out {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// domainOK reports whether a Domain attribute may be accepted from the
// device: absent, or one that domain-matches its host.
func (j *jar) domainOK(domain string) bool {
	d := strings.TrimPrefix(strings.ToLower(domain), ".")
	if d == "" {
		return true
	}
	return d == j.host || strings.HasSuffix(j.host, "."+d) && strings.Contains(d, ".")
}

// defaultPath is RFC 6265 5.1.4's default-path.
func defaultPath(p string) string {
	if p == "" || p[0] != '/' {
		return "/"
	}
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/"
	}
	return p[:i]
}

// pathMatch is RFC 6265 5.1.4's path-match.
func pathMatch(reqPath, cookiePath string) bool {
	if reqPath == "" {
		reqPath = "/"
	}
	if reqPath == cookiePath {
		return true
	}
	if strings.HasPrefix(reqPath, cookiePath) {
		return strings.HasSuffix(cookiePath, "/") || reqPath[len(cookiePath)] == '/'
	}
	return false
}
