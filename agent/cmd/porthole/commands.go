package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/internal/version"
	"github.com/porthole-dev/porthole/proto"
)

// command is one `porthole NAME`: its usage, and define, which registers
// its flags on fs and returns what runs it with the positional arguments.
type command struct {
	name    string
	args    string // after the name, for usage
	summary string
	details string // more for `porthole help NAME`
	// raw stops flag parsing at the first positional argument: what
	// follows it belongs to another program (ssh's options).
	raw    bool
	hidden bool
	define func(fs *flag.FlagSet) func(ctx context.Context, a *app, args []string) error
}

// commands is the CLI, in the order help lists it.
func commands() []*command {
	return []*command{
		{name: "login", summary: "sign in through your browser; the token is kept for --server",
			details: "Opens (or prints) an address where you allow the command in the app; nothing else is typed here.\n" +
				"--no-browser: the browser may be on another machine; the page then shows a code to paste here.",
			define: defineLogin},
		{name: "logout", summary: "revoke and forget the token of --server", define: defineLogout},
		{name: "devices", summary: "list the devices you may open, their services and health", define: defineDevices},
		{name: "sessions", summary: "list your live sessions", define: defineSessions},
		{name: "jobs", summary: "list past and live sessions (jobs) you may see", define: defineJobs},
		{name: "http", args: "DEVICE", summary: "serve DEVICE's web page on a local address", define: defineHTTP},
		{name: "forward", args: "DEVICE PORT", summary: "forward a local address (or stdin/stdout) to TCP PORT of DEVICE",
			details: "--stdio carries one connection on stdin and stdout, for OpenSSH's ProxyCommand:\n" +
				"  ssh -o ProxyCommand='porthole forward --stdio DEVICE %p' DEVICE",
			define: defineForward},
		{name: "ssh", args: "DEVICE [ssh options] [command]", summary: "run the system's ssh to DEVICE through Porthole", raw: true,
			details: "Everything after DEVICE goes to ssh, so scp-style options, -L/-R forwards and agent forwarding work.\n" +
				"DEVICE may be USER@DEVICE. --config prints a ~/.ssh/config entry so plain ssh, scp and sftp work too.",
			define: defineSSH},
		{name: "completion", args: "bash|zsh|fish", summary: "print a shell completion script", define: defineCompletion},
		{name: "version", summary: "print the version, commit, Go and pion versions", define: defineVersion},
		{name: "help", args: "[COMMAND]", summary: "show help for the commands or one command", define: defineHelp},
		{name: "__complete", hidden: true, raw: true, define: defineComplete},
	}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// printUsage lists the commands and the global flags.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "usage: porthole [global flags] COMMAND [args]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		if !c.hidden {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
		}
	}
	_ = tw.Flush()
	fmt.Fprint(w, "\nGlobal flags (before or after the command):\n")
	fs := flag.NewFlagSet("porthole", flag.ContinueOnError)
	(&app{}).globalFlags(fs)
	fs.Bool("version", false, "print the version and exit")
	printFlags(w, fs)
	fmt.Fprint(w, "\nRun 'porthole help COMMAND' for a command's flags. Exit codes: 0 ok, 1 error, 2 usage,\n"+
		"3 sign in needed, 4 not allowed or not found, 5 server, agent or device unavailable, 130 interrupted.\n")
}

// printCommandHelp shows one command's usage and flags.
func printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: porthole %s [flags]", c.name)
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fmt.Fprintf(w, "\n\n%s.\n", strings.ToUpper(c.summary[:1])+c.summary[1:])
	if c.details != "" {
		fmt.Fprintf(w, "%s\n", c.details)
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.define(fs)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs)
	}
	fmt.Fprint(w, "\nGlobal flags: --server, --token, --relay, --loopback-only, --verbose (see 'porthole help').\n")
}

// printFlags lists fs's flags as --name VALUE  usage.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + strings.ToUpper(name)
		}
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		fmt.Fprintf(tw, "  %s%s%s\t%s\n", dash, f.Name, name, usage)
	})
	_ = tw.Flush()
}

// runCommand parses c's flags (and the global ones again, so they may
// follow the command), then runs it.
func (a *app) runCommand(ctx context.Context, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runner := c.define(fs)
	a.globalFlags(fs)
	var pos []string
	var err error
	if c.raw {
		err = fs.Parse(args)
		pos = fs.Args()
	} else {
		pos, err = parseInterspersed(fs, args)
	}
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(a.stdout, c)
		return nil
	}
	if err != nil {
		return usageErrorf(c.name, "%v", err)
	}
	a.log = newLogger(a.stderr, a.verbose)
	if c.name != "help" && c.name != "completion" && c.name != "version" {
		if err := checkServerURL(a.server); err != nil {
			return err
		}
		if err := a.setupEgress(); err != nil {
			return err
		}
	}
	return runner(ctx, a, pos)
}

// checkServerURL refuses a --server that cannot be a server address.
func checkServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &userError{what: fmt.Sprintf("--server %q is not an http:// or https:// address", s),
			next: "give the address of the Porthole app, e.g. --server https://porthole.example.com", code: exitUsage}
	}
	return nil
}

// parseInterspersed lets flags follow positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// api is the client of signaling's API with the user's token; asking for
// it after the arguments were checked means a usage error is reported as
// one, not as "not signed in".
func (a *app) api() (*sigclient.API, error) {
	if err := a.resolveToken(time.Now()); err != nil {
		return nil, err
	}
	return &sigclient.API{Base: a.server, Token: a.token, Client: a.httpClient()}, nil
}

// writeJSON prints v as indented JSON (the API's own shapes).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func defineDevices(fs *flag.FlagSet) func(context.Context, *app, []string) error {
	asJSON := fs.Bool("json", false, "print the API's JSON instead of a table")
	return func(ctx context.Context, a *app, args []string) error {
		if len(args) != 0 {
			return usageErrorf("devices", "devices takes no arguments")
		}
		api, err := a.api()
		if err != nil {
			return err
		}
		l, err := api.Devices(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(a.stdout, l)
		}
		if len(l.Devices) == 0 {
			fmt.Fprintln(a.stdout, "No devices you may open. An administrator gives you the Remote Technician User role on a site.")
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tNAME\tSTATUS\tSERVICES\tHEALTH")
		for _, d := range l.Devices {
			status := "offline"
			if d.Online {
				status = "online"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, orDash(d.Name), status, servicesText(d.Device), healthText(d.Health))
		}
		return tw.Flush()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// services returns d's services; devices of older agents carry only ports.
func services(d proto.Device) []proto.Service {
	if d.Services != nil {
		return d.Services
	}
	out := make([]proto.Service, 0, len(d.Ports))
	for _, p := range d.Ports {
		k := proto.ServiceTCP
		if p == d.HTTPPort {
			k = proto.ServiceWeb
		}
		out = append(out, proto.Service{Kind: k, Port: p})
	}
	return out
}

func servicesText(d proto.Device) string {
	var parts []string
	for _, s := range services(d) {
		parts = append(parts, fmt.Sprintf("%s:%d", s.Kind, s.Port))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

func healthText(h *proto.DeviceHealth) string {
	switch {
	case h == nil:
		return "not checked yet"
	case h.Reachable && h.Problem != "":
		return "identity check failed: " + h.Problem
	case h.Reachable:
		return "reachable"
	case h.Unconfirmed:
		return "not confirmed (answers no probe)"
	case h.Problem != "":
		return "unreachable: " + h.Problem
	}
	return "unreachable"
}

func defineSessions(fs *flag.FlagSet) func(context.Context, *app, []string) error {
	asJSON := fs.Bool("json", false, "print JSON (the jobs API's shape) instead of a table")
	return func(ctx context.Context, a *app, args []string) error {
		if len(args) != 0 {
			return usageErrorf("sessions", "sessions takes no arguments")
		}
		api, err := a.api()
		if err != nil {
			return err
		}
		l, err := api.Jobs(ctx, url.Values{"limit": {"500"}})
		if err != nil {
			return err
		}
		live := proto.JobList{Jobs: []proto.JobView{}}
		for _, j := range l.Jobs {
			if j.Live {
				live.Jobs = append(live.Jobs, j)
			}
		}
		if *asJSON {
			return writeJSON(a.stdout, &live)
		}
		if len(live.Jobs) == 0 {
			fmt.Fprintln(a.stdout, "No live sessions. Open one with 'porthole http DEVICE', 'porthole forward' or 'porthole ssh'.")
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SESSION\tDEVICE\tTYPE\tSTATE\tPATH\tSTARTED\tENDS")
		for _, j := range live.Jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Device, j.Type, j.State, orDash(j.Path),
				j.Start.Local().Format("15:04:05"), j.Expires.Local().Format("15:04:05"))
		}
		return tw.Flush()
	}
}

func defineJobs(fs *flag.FlagSet) func(context.Context, *app, []string) error {
	asJSON := fs.Bool("json", false, "print the API's JSON instead of a table")
	device := fs.String("device", "", "only jobs on this device")
	limit := fs.Int("limit", 50, "at most this many jobs, newest first")
	return func(ctx context.Context, a *app, args []string) error {
		if len(args) != 0 {
			return usageErrorf("jobs", "jobs takes no arguments (filter with --device, --limit)")
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *device != "" {
			q.Set("device", *device)
		}
		api, err := a.api()
		if err != nil {
			return err
		}
		l, err := api.Jobs(ctx, q)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(a.stdout, l)
		}
		if len(l.Jobs) == 0 {
			fmt.Fprintln(a.stdout, "No jobs yet.")
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tDEVICE\tTYPE\tUSER\tSTATE\tSTARTED\tDURATION\tENDED BECAUSE")
		for _, j := range l.Jobs {
			user := j.UserName
			if user == "" {
				user = j.User
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Device, j.Type, user, j.State,
				j.Start.Local().Format(time.DateTime), (time.Duration(j.DurationMS) * time.Millisecond).Round(time.Second), orDash(j.EndReason))
		}
		return tw.Flush()
	}
}

func defineVersion(fs *flag.FlagSet) func(context.Context, *app, []string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(_ context.Context, a *app, _ []string) error {
		v := version.Get("porthole")
		if *asJSON {
			return writeJSON(a.stdout, v)
		}
		fmt.Fprint(a.stdout, v)
		return nil
	}
}

func defineHelp(*flag.FlagSet) func(context.Context, *app, []string) error {
	return func(_ context.Context, a *app, args []string) error {
		switch len(args) {
		case 0:
			printUsage(a.stdout)
			return nil
		case 1:
			c := findCommand(args[0])
			if c == nil || c.hidden {
				return usageErrorf("", "no command %q", args[0])
			}
			printCommandHelp(a.stdout, c)
			return nil
		}
		return usageErrorf("help", "help takes one command")
	}
}

// defineComplete is the shell scripts' helper: `porthole __complete
// devices` prints the IDs of the devices one may open, one per line, and
// nothing on any error (completion must never print errors).
func defineComplete(*flag.FlagSet) func(context.Context, *app, []string) error {
	return func(ctx context.Context, a *app, args []string) error {
		if api, err := a.api(); err == nil && len(args) == 1 && args[0] == "devices" {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if l, err := api.Devices(ctx); err == nil {
				for _, d := range l.Devices {
					fmt.Fprintln(a.stdout, d.ID)
				}
			}
		}
		return nil
	}
}

// findDevice looks device up in the caller's device list, so a session is
// not asked for what cannot work: an unknown or offline device, or (port
// > 0) a port it does not declare.
func (a *app) findDevice(ctx context.Context, id string, port int) (*proto.DeviceStatus, error) {
	api, err := a.api()
	if err != nil {
		return nil, err
	}
	l, err := api.Devices(ctx)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(l.Devices, func(d proto.DeviceStatus) bool { return d.ID == id })
	if i < 0 {
		return nil, &userError{what: fmt.Sprintf("there is no device %q that you may open", id),
			next: "run 'porthole devices' to see the device IDs", code: exitDenied}
	}
	d := &l.Devices[i]
	if !d.Online {
		return nil, &userError{what: fmt.Sprintf("%s is offline: its agent is not connected to the server", id),
			next: "check that porthole-agent runs at the site and reaches the server; 'porthole devices' shows when it is back", code: exitUnavailable}
	}
	if port > 0 && !slices.Contains(d.Ports, port) {
		return nil, &userError{what: fmt.Sprintf("%s does not declare port %d (it offers %s)", id, port, servicesText(d.Device)),
			next: "forward one of those, or ask the site's admin to declare the port in the agent's configuration (services)", code: exitDenied}
	}
	return d, nil
}
