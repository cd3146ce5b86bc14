package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/agent/deviceid"
)

// tlsPinDir is where the certificates of https devices pinned at first use
// are kept, inside the state directory.
func tlsPinDir(stateDir string) string { return filepath.Join(stateDir, "tls-pins") }

// trustCmd is `porthole-agent trust [--sha256 FP] DEVICE`: it accepts the
// TLS certificate of an https device whose certificate changed since it was
// pinned at first use. With --sha256 (the new fingerprint named in the
// refusal) exactly that certificate is pinned; without, the pin is removed
// and the next successful identity check pins the certificate the device
// presents then. A running agent reads the pin at every check: no restart.
func trustCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("trust", flag.ContinueOnError)
	configPath := fs.String("config", defaultConfig, "agent configuration file (JSON)")
	stateDir := fs.String("state-dir", "", "state directory (default: the config's stateDir, else "+defaultStateDir+")")
	fp := fs.String("sha256", "", "pin this certificate SHA-256 (hex) instead of the one seen at the next check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: porthole-agent trust [--config FILE] [--state-dir DIR] [--sha256 FINGERPRINT] DEVICE")
	}
	device := fs.Arg(0)
	fc, err := daemon.LoadFile(*configPath)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(fc.Devices, func(d daemon.DeviceConfig) bool { return d.ID == device }) {
		return fmt.Errorf("%s declares no device %q", *configPath, device)
	}
	pins := &deviceid.PinStore{Dir: tlsPinDir(stateDirOf(*stateDir, fc))}
	old, err := pins.Get(device)
	if err != nil {
		return err
	}
	if *fp != "" {
		if err := pins.Set(device, *fp); err != nil {
			return err
		}
		now, _ := pins.Get(device)
		fmt.Fprintf(out, "device %s: TLS certificate SHA-256 %s pinned (was %s)\n", device, now, orNone(old))
		return nil
	}
	if err := pins.Remove(device); err != nil {
		return err
	}
	fmt.Fprintf(out, "device %s: pin %s removed; the certificate seen at the next session is pinned\n", device, orNone(old))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
