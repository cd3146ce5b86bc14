package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/agent/enroll"
)

// enrollCmd is `porthole-agent enroll --server URL --token T [--state-dir DIR]`.
func enrollCmd(args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	server := fs.String("server", "", "signaling base URL, e.g. https://porthole.example.com (required)")
	token := fs.String("token", "", "one-time enrollment token (or env PORTHOLE_ENROLL_TOKEN)")
	stateDir := fs.String("state-dir", defaultStateDir, "where the key, certificate and CA are kept")
	caFile := fs.String("ca-file", "", "PEM file of a CA to trust for the server besides the system's (also a TLS-inspecting proxy's CA)")
	configPath := fs.String("config", "", "agent configuration file whose proxy entry to use (default: HTTPS_PROXY/NO_PROXY from the environment)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		*token = strings.TrimSpace(os.Getenv("PORTHOLE_ENROLL_TOKEN"))
	}
	if *server == "" || *token == "" {
		return errors.New("--server and --token are required")
	}
	var opt enroll.Options
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		if opt.RootCAs, err = x509.SystemCertPool(); err != nil {
			opt.RootCAs = x509.NewCertPool()
		}
		if !opt.RootCAs.AppendCertsFromPEM(b) {
			return fmt.Errorf("%s: no PEM certificate", *caFile)
		}
	}
	fc := &daemon.FileConfig{}
	if *configPath != "" {
		var err error
		if fc, err = daemon.LoadFile(*configPath); err != nil {
			return err
		}
	}
	eg, err := fc.Egress(*httpproxy.FromEnvironment(), opt.RootCAs)
	if err != nil {
		return err
	}
	opt.Egress = eg
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := enroll.Enroll(ctx, *server, *token, *stateDir, opt)
	if err != nil {
		return err
	}
	info := st.Info()
	fmt.Printf("enrolled as agent %s on site %s; certificate valid until %s\nstate in %s; start with: porthole-agent run\n",
		info.Agent, info.Site, st.Certificate().NotAfter.Format(time.RFC3339), st.Dir())
	return nil
}

// loadEnrollment loads the enrollment from the state directory (the flag,
// else the config's stateDir, else the default). Without one, an agent
// with a pre-shared key runs on that (demo and tests); otherwise it is an
// error.
// stateDirOf is the state directory: the flag's, else the config file's,
// else the default.
func stateDirOf(flagDir string, fc *daemon.FileConfig) string {
	if flagDir != "" {
		return flagDir
	}
	if fc.StateDir != "" {
		return fc.StateDir
	}
	return defaultStateDir
}

func loadEnrollment(flagDir string, fc *daemon.FileConfig, log *slog.Logger) (*enroll.State, error) {
	dir := stateDirOf(flagDir, fc)
	st, err := enroll.Load(dir)
	switch {
	case err == nil:
		info := st.Info()
		log.Info("enrolled", "agent", info.Agent, "site", info.Site, "agent_url", info.AgentURL,
			"certificate_expires", st.Certificate().NotAfter)
		return st, nil
	case errors.Is(err, enroll.ErrNotEnrolled) && fc.Key != "":
		log.Warn("not enrolled; using the pre-shared agent key (demo and tests only)", "state_dir", dir)
		return nil, nil
	default:
		return nil, err
	}
}
