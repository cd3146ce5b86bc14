package daemon

import (
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// TestDrainReconnectsAtOnce: a drain message from signaling makes the
// agent reconnect at once, though its backoff (an hour in this harness)
// would have it wait, and say hello again on the new connection.
func TestDrainReconnectsAtOnce(t *testing.T) {
	h := startAgent(t, nil, nil)
	h.send(proto.TypeDrain, "", &proto.Drain{Message: "signaling node n1 is shutting down; reconnect"})
	start := time.Now()
	select {
	case ws := <-h.sig.conns:
		t.Cleanup(func() { ws.Close() })
		h.ws = ws
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not reconnect after a drain message")
	}
	if env := h.next(); env.Type != proto.TypeHello {
		t.Fatalf("first message on the new connection: %s", env.Type)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("reconnecting took %s", took)
	}
}
