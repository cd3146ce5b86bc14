// Package relayprobe measures the round trip from the agent to TURN relays
// with STUN binding requests (RFC 8489), which every TURN server answers
// without credentials. Signaling uses the results (proto.TypeRelayRTT) to
// hand each session the relays nearest to its agent.
package relayprobe

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/porthole-dev/porthole/proto"
)

// Options tune a measurement. Zero values mean the defaults.
type Options struct {
	// Attempts is how many binding requests each URL gets; the fastest
	// answer counts. Default 3.
	Attempts int
	// Timeout bounds one attempt. Default 1 s.
	Timeout time.Duration
	// Dial opens the probe's connection; nil means a net.Dialer. Tests
	// and the loopback-only mode pass their own.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Measure probes every URL in parallel and returns one result per URL it
// can probe, in the order of urls: turn: and stun: over UDP (the default)
// or TCP. turns: URLs and malformed ones are skipped: reaching them takes a
// TLS handshake, and the turn: URL of the same relay tells its distance.
// It returns when every probe has answered or timed out, or ctx ends.
func Measure(ctx context.Context, urls []string, opt Options) []proto.RelayProbe {
	if opt.Attempts <= 0 {
		opt.Attempts = 3
	}
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	if opt.Dial == nil {
		var d net.Dialer
		opt.Dial = d.DialContext
	}
	results := make([]*proto.RelayProbe, len(urls))
	var wg sync.WaitGroup
	for i, raw := range urls {
		network, addr, ok := target(raw)
		if !ok {
			continue
		}
		wg.Go(func() {
			rtt, err := probe(ctx, network, addr, opt)
			r := &proto.RelayProbe{URL: raw}
			if err != nil {
				r.Failed = true
			} else {
				r.RTTMS = min(float64(rtt)/float64(time.Millisecond), proto.MaxRelayRTTMS)
			}
			results[i] = r
		})
	}
	wg.Wait()
	out := make([]proto.RelayProbe, 0, len(urls))
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// target returns the network and address to probe for an ICE URL of the
// form (stun|turn):host[:port][?transport=udp|tcp].
func target(raw string) (network, addr string, ok bool) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || (scheme != "turn" && scheme != "stun") {
		return "", "", false
	}
	hostport, query, _ := strings.Cut(rest, "?")
	network = "udp"
	switch query {
	case "", "transport=udp":
	case "transport=tcp":
		network = "tcp"
	default:
		return "", "", false
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(hostport, "3478")
	}
	if h, _, _ := net.SplitHostPort(hostport); h == "" {
		return "", "", false
	}
	return network, hostport, true
}

var errNoAnswer = errors.New("no STUN answer")

// probe sends up to opt.Attempts binding requests over one connection and
// returns the fastest round trip.
func probe(ctx context.Context, network, addr string, opt Options) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(opt.Attempts)*opt.Timeout)
	defer cancel()
	c, err := opt.Dial(ctx, network, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	best := time.Duration(-1)
	buf := make([]byte, 1500)
	for range opt.Attempts {
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		start := time.Now()
		if _, err := c.Write(req.Raw); err != nil {
			break
		}
		_ = c.SetReadDeadline(start.Add(opt.Timeout))
		for {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			var res stun.Message
			res.Raw = buf[:n]
			if res.Decode() != nil || res.TransactionID != req.TransactionID {
				continue // a late answer to an earlier attempt, or noise
			}
			if rtt := time.Since(start); best < 0 || rtt < best {
				best = rtt
			}
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	if best < 0 {
		return 0, errNoAnswer
	}
	return best, nil
}
