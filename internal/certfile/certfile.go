// Package certfile serves a TLS certificate from a pair of PEM files and
// picks up new files when an outside tool (certbot, lego, an operator)
// replaces them, so a renewed certificate needs no restart.
//
// The files are looked at, at most once per Interval, on a handshake: a
// change of either file's size or modification time reloads both. A pair
// that fails to load (a half-written renewal, a key that does not match)
// is logged and the previous certificate goes on being served.
package certfile

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultInterval is how often the files are looked at.
const DefaultInterval = 10 * time.Second

// Reloader serves the certificate in CertFile and KeyFile.
type Reloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // sizes and modification times of the loaded files
	checked time.Time
}

// New loads the pair once (an error if it does not load) and returns a
// Reloader. interval 0 means DefaultInterval; log nil discards.
func New(certFile, keyFile string, interval time.Duration, log *slog.Logger) (*Reloader, error) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, interval: interval, log: log, now: time.Now}
	stamp, err := r.stampFiles()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamp); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) stampFiles() (string, error) {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d:%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

func (r *Reloader) load(stamp string) error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &c, stamp
	return nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= r.interval {
		r.checked = now
		if stamp, err := r.stampFiles(); err != nil {
			r.log.Warn("TLS certificate files unreadable; serving the loaded one", "cert", r.certFile, "err", err)
		} else if stamp != r.stamp {
			if err := r.load(stamp); err != nil {
				r.log.Warn("new TLS certificate files do not load; serving the previous one", "err", err)
			} else {
				r.log.Info("TLS certificate reloaded", "cert", r.certFile, "expires", r.cert.Leaf.NotAfter)
			}
		}
	}
	return r.cert, nil
}

// Leaf returns the certificate being served.
func (r *Reloader) Leaf() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert
}
