// Command porthole-demo-device serves the demo printer's embedded web server (see package
// demodevice) and prints "demo device listening on http://ADDR" once it accepts connections.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

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
	fmt.Printf("demo device listening on http://%s\n", ln.Addr())
	if err := demodevice.Serve(ctx, ln, demodevice.New(cfg)); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}
