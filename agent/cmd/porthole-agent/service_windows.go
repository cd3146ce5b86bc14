package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// serviceName is the agent's name in the Windows service manager.
const serviceName = "porthole-agent"

const serviceUsage = `usage: porthole-agent service install [--config FILE] [--state-dir DIR]
       porthole-agent service uninstall

install registers this executable as the Windows service "porthole-agent"
(automatic start, restarted after a failure, run as the virtual account
NT SERVICE\porthole-agent), which runs "porthole-agent run" with the flags
given, and creates the state directory readable only by that account,
SYSTEM and Administrators. Then, as an administrator:
  porthole-agent enroll --server https://porthole.example.com --token TOKEN
  sc start porthole-agent
`

// serviceCmd is `porthole-agent service install|uninstall`.
func serviceCmd(args []string, out io.Writer) error {
	if len(args) == 0 || isHelpArg(args[0]) {
		fmt.Fprint(out, serviceUsage)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return nil
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("service manager (run as an administrator): %w", err)
	}
	defer m.Disconnect()
	switch args[0] {
	case "install":
		fs := flag.NewFlagSet("service install", flag.ContinueOnError)
		config := fs.String("config", defaultConfig, "agent configuration file")
		stateDir := fs.String("state-dir", defaultStateDir, "enrollment state directory")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		if exe, err = filepath.Abs(exe); err != nil {
			return err
		}
		s, err := m.CreateService(serviceName, exe, mgr.Config{
			DisplayName:      "Porthole agent",
			Description:      "Lets authorised technicians reach this site's declared devices through one outbound connection.",
			StartType:        mgr.StartAutomatic,
			DelayedAutoStart: true,
			// A virtual account of its own (NT SERVICE\porthole-agent):
			// no administrator right, no password, and the only
			// account besides SYSTEM and Administrators that may read
			// the state directory (protectStateDir).
			ServiceStartName: `NT SERVICE\` + serviceName,
		}, "run", "--config", *config, "--state-dir", *stateDir)
		if err != nil {
			return fmt.Errorf("create service: %w", err)
		}
		defer s.Close()
		if err := s.SetRecoveryActions([]mgr.RecoveryAction{
			{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
			{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
			{Type: mgr.ServiceRestart, Delay: 2 * time.Minute},
		}, uint32((24 * time.Hour).Seconds())); err != nil {
			return fmt.Errorf("recovery actions: %w", err)
		}
		if err := protectStateDir(*stateDir); err != nil {
			return fmt.Errorf("state directory %s: %w", *stateDir, err)
		}
		if err := eventlog.InstallAsEventCreate(serviceName, eventlog.Error|eventlog.Warning|eventlog.Info); err != nil {
			fmt.Fprintf(out, "event log source not registered: %v\n", err)
		}
		fmt.Fprintf(out, "service %s installed (%s run --config %s --state-dir %s); start it with: sc start %s\n",
			serviceName, exe, *config, *stateDir, serviceName)
		return nil
	case "uninstall":
		s, err := m.OpenService(serviceName)
		if err != nil {
			return fmt.Errorf("open service: %w", err)
		}
		defer s.Close()
		if err := s.Delete(); err != nil {
			return fmt.Errorf("delete service: %w", err)
		}
		_ = eventlog.Remove(serviceName)
		fmt.Fprintf(out, "service %s removed (its state directory is kept)\n", serviceName)
		return nil
	}
	fmt.Fprint(os.Stderr, serviceUsage)
	return fmt.Errorf("unknown command %q", args[0])
}

func isHelpArg(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "help" }

// runAsService runs the agent under the Windows service manager when it
// started this process (false otherwise): Stop and Shutdown end run's
// context, and the service reports stopped once run has returned; the
// agent's log goes to the Application event log.
func runAsService() (bool, error) {
	isSvc, err := svc.IsWindowsService()
	if err != nil || !isSvc {
		return false, err
	}
	return true, svc.Run(serviceName, &service{})
}

type service struct{}

// Execute is the service's control loop (golang.org/x/sys/windows/svc).
func (*service) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	elog, err := eventlog.Open(serviceName)
	var logOut io.Writer = io.Discard
	if err == nil {
		defer elog.Close()
		logOut = eventWriter{elog}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, logOut) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintf(logOut, "porthole-agent stopped: %v\n", err)
				return false, 1 // the recovery actions restart it
			}
			return false, 0
		case r := <-req:
			switch r.Cmd {
			case svc.Interrogate:
				status <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
				<-done
				return false, 0
			}
		}
	}
}

// eventWriter writes each log line to the event log at Info, or at
// Warning and Error for the lines slog marks so.
type eventWriter struct{ l *eventlog.Log }

func (w eventWriter) Write(p []byte) (int, error) {
	msg := string(p)
	var err error
	switch {
	case containsLevel(msg, "ERROR"):
		err = w.l.Error(3, msg)
	case containsLevel(msg, "WARN"):
		err = w.l.Warning(2, msg)
	default:
		err = w.l.Info(1, msg)
	}
	return len(p), err
}

func containsLevel(line, level string) bool { return strings.Contains(line, " level="+level+" ") }

// protectStateDir creates dir and gives it a protected ACL, inherited by
// everything in it (the key among them): full control for SYSTEM,
// Administrators and the service's own account, nothing for anyone else
// (ProgramData's default would let every user read the agent's key).
func protectStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	sid, _, _, err := windows.LookupSID("", `NT SERVICE\`+serviceName)
	if err != nil {
		return fmt.Errorf("look up the service account: %w", err)
	}
	sd, err := windows.SecurityDescriptorFromString("D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;" + sid.String() + ")")
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
}
