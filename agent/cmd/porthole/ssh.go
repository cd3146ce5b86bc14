package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// `porthole ssh` runs the system's OpenSSH with this binary as its
// transport: -o ProxyCommand='porthole … forward --stdio DEVICE %p'. It is
// real ssh, so its options, scp/sftp (through --config), port forwards and
// agent forwarding all work, and host keys are ssh's own known_hosts
// business, under an alias per server and device (a device ID such as
// "printer-1" may also be a real host's name on the technician's LAN).

func defineSSH(fs *flag.FlagSet) func(context.Context, *app, []string) error {
	config := fs.Bool("config", false, "print a ~/.ssh/config entry for DEVICE instead of connecting")
	sshBin := fs.String("ssh", "ssh", "the ssh `program` to run")
	return func(ctx context.Context, a *app, args []string) error {
		if len(args) == 0 {
			return usageErrorf("ssh", "usage: porthole ssh DEVICE [ssh options] [command]")
		}
		dest := args[0]
		device := dest
		if i := strings.LastIndex(dest, "@"); i >= 0 {
			device = dest[i+1:]
		}
		if device == "" || strings.HasPrefix(dest, "-") {
			return usageErrorf("ssh", "give the device first: porthole ssh DEVICE [ssh options] [command]")
		}
		d, err := a.findDevice(ctx, device, 0)
		if err != nil && !*config {
			return err
		}
		port := 22
		if d != nil {
			if sv, ok := d.Service("ssh"); ok {
				port = sv.Port
			}
		}
		proxy, err := a.proxyCommand(device)
		if err != nil {
			return err
		}
		alias := hostKeyAlias(a.server, device)
		if *config {
			fmt.Fprintf(a.stdout, "# %s through Porthole (%s). Add to ~/.ssh/config, then: ssh %s\n", device, a.server, device)
			fmt.Fprintf(a.stdout, "Host %s\n    HostName %s\n    Port %d\n    HostKeyAlias %s\n    ProxyCommand %s\n", device, device, port, alias, proxy)
			return nil
		}
		bin, err := exec.LookPath(*sshBin)
		if err != nil {
			return &userError{what: "cannot run ssh: " + err.Error(), next: "install OpenSSH's client (openssh-client), or name it with --ssh", code: exitError}
		}
		// Our defaults first: for ssh the last -p wins, so the user's own
		// options after DEVICE override them.
		sshArgs := []string{"-o", "ProxyCommand=" + proxy, "-o", "HostKeyAlias=" + alias, "-p", strconv.Itoa(port)}
		sshArgs = append(append(sshArgs, dest), args[1:]...)
		cmd := exec.CommandContext(ctx, bin, sshArgs...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = a.stdin, a.stdout, a.stderr
		cmd.Env = os.Environ()
		if a.token != "" && a.getenv("PORTHOLE_TOKEN") != a.token {
			// Never on a command line (ps shows it): the ProxyCommand
			// finds it in its environment.
			cmd.Env = append(cmd.Env, "PORTHOLE_TOKEN="+a.token)
		}
		err = cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			// ssh said what went wrong; its status is ours.
			return &userError{code: ee.ExitCode(), err: err}
		}
		if err != nil {
			return fmt.Errorf("run ssh: %w", err)
		}
		return nil
	}
}

// proxyCommand is the ProxyCommand that carries ssh to device: this very
// binary, with the global flags in effect, shell-quoted, and '%' doubled
// where ssh would expand it.
func (a *app) proxyCommand(device string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the porthole binary for ssh's ProxyCommand: %w", err)
	}
	words := []string{exe, "--server", a.server}
	if a.relay {
		words = append(words, "--relay")
	}
	if a.loopback {
		words = append(words, "--loopback-only")
	}
	if a.verbose {
		words = append(words, "--verbose")
	}
	words = append(words, "forward", "--stdio", device)
	for i, w := range words {
		words[i] = strings.ReplaceAll(shellQuote(w), "%", "%%")
	}
	return strings.Join(words, " ") + " %p", nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// hostKeyAlias names device's host key in known_hosts:
// porthole.<server host>.<device>, which no real host name collides with.
func hostKeyAlias(server, device string) string {
	host := server
	if u, err := url.Parse(server); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return "porthole." + host + "." + device
}
