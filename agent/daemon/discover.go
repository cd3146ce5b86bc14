package daemon

import (
	"context"
	"crypto/rand"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// Discovery over signaling: the agent scans its scope (agent/discovery)
// when signaling sends discovery.run (signaling asks for the first scan
// of a site) and every DiscoveryInterval after the agent starts, and
// reports the candidates in discovery.report parts of at most
// proto.MaxReportDevices each. Scans never overlap: a request that
// arrives during one is answered by that scan's report. What a scan sends
// on the LAN and its bounds are the scanner's (README, "Finding the
// site's devices").

// startDiscovery starts a scan unless one is running or discovery is off.
func (a *Agent) startDiscovery(ctx context.Context, why string) {
	if a.cfg.Scanner == nil {
		_ = a.send(proto.TypeError, "", &proto.Error{Code: proto.CodeUnsupported,
			Message: "discovery is off on this agent (its configuration says \"discovery\": {\"off\": true}, or it has no scope)"})
		return
	}
	if !a.scanning.CompareAndSwap(false, true) {
		a.log.Info("discovery already running; its report answers this request too", "why", why)
		return
	}
	a.wg.Go(func() {
		defer a.scanning.Store(false)
		a.discover(ctx, why)
	})
}

// discoverLoop scans every interval until ctx ends.
func (a *Agent) discoverLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.DiscoveryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.startDiscovery(ctx, "periodic")
		}
	}
}

func (a *Agent) discover(ctx context.Context, why string) {
	a.log.Info("discovery starting", "why", why, "scope", a.cfg.Scanner.Scope().String())
	res, err := a.cfg.Scanner.Run(ctx)
	if err != nil && res == nil {
		a.log.Warn("discovery failed", "err", err)
		return
	}
	scan := "scan-" + strings.ToLower(rand.Text()[:16])
	var prefixes []string
	for _, p := range a.cfg.Scanner.Scope().Prefixes() {
		prefixes = append(prefixes, p.String())
	}
	devs := res.Devices
	if len(devs) > proto.MaxDiscoveredPerRun {
		devs, res.Truncated = devs[:proto.MaxDiscoveredPerRun], true
	}
	for first := true; first || len(devs) > 0; first = false {
		n := min(len(devs), proto.MaxReportDevices)
		part := &proto.DiscoveryReport{Scan: scan, Scope: prefixes, Started: res.Started.UTC(), Devices: devs[:n]}
		devs = devs[n:]
		if len(devs) == 0 {
			part.Last, part.Probes, part.DurationMS, part.Truncated = true, int(res.Probes), res.Duration.Milliseconds(), res.Truncated
		}
		if err := a.send(proto.TypeDiscoveryReport, "", part); err != nil {
			a.log.Info("discovery report not sent (no signaling connection); the next scan reports again", "scan", scan, "err", err)
			return
		}
	}
	a.log.Info("discovery reported", "scan", scan, "devices", len(res.Devices), "probes", res.Probes)
}
