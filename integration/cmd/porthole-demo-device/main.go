// Command porthole-demo-device serves the demo printer's embedded web server (see package
// demodevice) and prints "demo device listening on http://ADDR" once it accepts connections.
// With --legacy-https it also serves the same device on a TLS 1.0-only port (demodevice.
// LegacyTLSConfig) and prints "legacy https listening on https://ADDR"; with --https-redirect
// (which needs --legacy-https) an http port that sends everything there, "https redirect
// listening on http://ADDR".
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/porthole-dev/porthole/integration/demodevice"
	"github.com/porthole-dev/porthole/internal/version"
)

func main() {
	var cfg demodevice.Config
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	flag.StringVar(&cfg.Model, "model", demodevice.DefaultModel, "product name")
	flag.StringVar(&cfg.Serial, "serial", demodevice.DefaultSerial, "serial number")
	flag.StringVar(&cfg.MAC, "mac", demodevice.DefaultMAC, "MAC address shown by the device")
	flag.StringVar(&cfg.AdminUser, "admin-user", "admin", "user name for /login")
	flag.StringVar(&cfg.AdminPass, "admin-pass", "admin", "password for /login")
	flag.StringVar(&cfg.BasicUser, "basic-user", "service", "user name for /basic/")
	flag.StringVar(&cfg.BasicPass, "basic-pass", "service", "password for /basic/")
	flag.BoolVar(&cfg.StrictOrigin, "strict-origin", false, "refuse form posts whose Origin is another host")
	legacyHTTPS := flag.String("legacy-https", "", "also serve the device with TLS 1.0 only (RSA key exchange, 1024-bit SHA-1 expired certificate) on this address")
	httpsRedirect := flag.String("https-redirect", "", "also listen on this address with an http port that redirects everything to the --legacy-https port")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Print(version.Get("porthole-demo-device"))
		return
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "addr", *listen, "err", err)
		os.Exit(1)
	}
	d := demodevice.New(cfg)
	// The extra listeners' failures end the process like the main one's.
	fail := func(what string, err error) {
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what, "err", err)
			os.Exit(1)
		}
	}
	if *legacyHTTPS != "" {
		tln, err := legacyListener(*legacyHTTPS)
		if err != nil {
			log.Error("legacy https", "err", err)
			os.Exit(1)
		}
		fmt.Printf("legacy https listening on https://%s\n", tln.Addr())
		go func() { fail("serve legacy https", demodevice.Serve(ctx, tln, d)) }()
		if *httpsRedirect != "" {
			rln, err := net.Listen("tcp", *httpsRedirect)
			if err != nil {
				log.Error("listen", "addr", *httpsRedirect, "err", err)
				os.Exit(1)
			}
			fmt.Printf("https redirect listening on http://%s\n", rln.Addr())
			srv := &http.Server{Handler: demodevice.RedirectToHTTPS(tln.Addr().(*net.TCPAddr).Port), ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-ctx.Done()
				_ = srv.Close()
			}()
			go func() { fail("serve https redirect", srv.Serve(rln)) }()
		}
	}
	fmt.Printf("demo device listening on http://%s\n", ln.Addr())
	if err := demodevice.Serve(ctx, ln, d); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// legacyListener is a TLS listener on addr as an old printer's https port.
func legacyListener(addr string) (net.Listener, error) {
	cert, err := demodevice.LegacyCertificate()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return tls.NewListener(ln, demodevice.LegacyTLSConfig(cert)), nil
}
