package proto

import "time"

// A signaling node that is shutting down (a rolling restart) drains: it
// tells each agent and technician client connected to it to reconnect, at
// once and to another node, with a drain message, then closes the
// connection with close code 1012 (service restart). The sessions it
// served are handed to whichever node the agent reaches next; a client
// that reconnects there resumes its session under the same binding rules.
const TypeDrain MsgType = "drain" // signaling → agent or client: Drain

// PathReady answers 200 while the node takes new connections and 503 while
// it drains: what a load balancer's health check asks.
const PathReady = "/readyz"

// MaxDrainRetry bounds the retry hint of a drain message.
const MaxDrainRetry = time.Minute

// Drain tells a peer to reconnect now.
type Drain struct {
	// RetryAfterMS is how long the peer should wait before it reconnects
	// (0: at once), so that a load balancer has noticed the node leave.
	RetryAfterMS int64  `json:"retryAfterMs,omitempty"`
	Message      string `json:"message,omitempty"`
}

// Validate checks a drain message.
func (d *Drain) Validate() error {
	if d.RetryAfterMS < 0 || d.RetryAfterMS > MaxDrainRetry.Milliseconds() {
		return Errorf(CodeBadMessage, "drain: retry hint %d ms out of range", d.RetryAfterMS)
	}
	if len(d.Message) > MaxText {
		return Errorf(CodeBadMessage, "drain: message too long")
	}
	return nil
}

// RetryAfter is the retry hint as a duration.
func (d *Drain) RetryAfter() time.Duration { return time.Duration(d.RetryAfterMS) * time.Millisecond }
