package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/sshterm"
)

// sshPinDir is where the SSH host keys pinned at first use are kept,
// inside the state directory.
func sshPinDir(stateDir string) string { return filepath.Join(stateDir, "ssh-host-keys") }

const sshKeysUsage = "usage: porthole-agent ssh-host-keys [--config FILE] [--state-dir DIR] list | forget DEVICE [PORT]"

// sshKeysCmd is `porthole-agent ssh-host-keys list` (every SSH host key
// pinned at first use: device, port, fingerprint) and `… forget DEVICE
// [PORT]` (remove the pin of the device's SSH service on PORT, or on every
// port: the next terminal pins the key the device presents then). A
// running agent reads the pins at every login: no restart.
func sshKeysCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ssh-host-keys", flag.ContinueOnError)
	configPath := fs.String("config", defaultConfig, "agent configuration file (JSON)")
	stateDir := fs.String("state-dir", "", "state directory (default: the config's stateDir, else "+defaultStateDir+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New(sshKeysUsage)
	}
	fc, err := daemon.LoadFile(*configPath)
	if err != nil {
		return err
	}
	dir := sshPinDir(stateDirOf(*stateDir, fc))
	pins := &deviceid.PinStore{Dir: dir}
	type pin struct {
		device string
		port   int
		key    string // the pin's name (sshterm.PinKey)
		fp     string // hex SHA-256
	}
	var all []pin
	names, err := filepath.Glob(filepath.Join(dir, "*.sha256"))
	if err != nil {
		return err
	}
	for _, name := range names {
		id := strings.TrimSuffix(filepath.Base(name), ".sha256")
		i := strings.LastIndex(id, ":ssh:")
		if i < 0 {
			continue
		}
		port, err := strconv.Atoi(id[i+len(":ssh:"):])
		if err != nil {
			continue
		}
		fp, err := pins.Get(id)
		if err != nil || fp == "" {
			fmt.Fprintf(os.Stderr, "porthole-agent ssh-host-keys: %s unreadable: %v\n", name, err)
			continue
		}
		all = append(all, pin{device: id[:i], port: port, key: id, fp: fp})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].device != all[j].device {
			return all[i].device < all[j].device
		}
		return all[i].port < all[j].port
	})
	switch fs.Arg(0) {
	case "list":
		if fs.NArg() != 1 {
			return errors.New(sshKeysUsage)
		}
		if len(all) == 0 {
			fmt.Fprintf(out, "no SSH host keys pinned (in %s)\n", dir)
		}
		for _, p := range all {
			fmt.Fprintf(out, "%s\tport %d\t%s\n", p.device, p.port, sshterm.Fingerprint(p.fp))
		}
		return nil
	case "forget":
		if fs.NArg() < 2 || fs.NArg() > 3 {
			return errors.New(sshKeysUsage)
		}
		device, port := fs.Arg(1), 0
		if fs.NArg() == 3 {
			if port, err = strconv.Atoi(fs.Arg(2)); err != nil || port < 1 || port > 65535 {
				return fmt.Errorf("port %q out of range", fs.Arg(2))
			}
		}
		n := 0
		for _, p := range all {
			if p.device != device || port != 0 && p.port != port {
				continue
			}
			if err := pins.Remove(p.key); err != nil {
				return err
			}
			fmt.Fprintf(out, "device %s port %d: host key %s forgotten; the key seen at the next terminal is pinned\n", p.device, p.port, sshterm.Fingerprint(p.fp))
			n++
		}
		if n == 0 && port != 0 {
			return fmt.Errorf("no SSH host key pinned for device %q port %d", device, port)
		}
		if n == 0 {
			return fmt.Errorf("no SSH host key pinned for device %q", device)
		}
		return nil
	}
	return errors.New(sshKeysUsage)
}
