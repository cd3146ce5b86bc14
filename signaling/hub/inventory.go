package hub

import (
	"context"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// The inventory over an agent's connection (proto/discovery.go): after
// its welcome an agent is sent its adopted devices, and whenever they
// change (PushInventory); it answers with inventory.applied, whose
// devices replace what its hello declared. Its discovery reports go to
// the inventory as they arrive. All of it goes through Inventory hooks
// that do store I/O, so none of it runs under the hub's lock.

// InventoryHooks connect the hub to the sites' inventory (package
// inventory). Every method is called on the agent's read goroutine,
// without the hub's lock, and may do store I/O; an error is sent back to
// the agent and logged.
type InventoryHooks interface {
	// Declared records the devices an agent declares now (its hello).
	Declared(ctx context.Context, agent string, devices []proto.Device) error
	// Inventory returns what agent is to serve besides its own file.
	Inventory(ctx context.Context, agent string) (*proto.Inventory, error)
	// Applied records agent's answer to an inventory.
	Applied(ctx context.Context, agent string, a *proto.InventoryApplied) error
	// Report takes one part of a discovery scan of agent.
	Report(ctx context.Context, agent string, r *proto.DiscoveryReport) error
}

// inventoryTimeout bounds the store I/O of one inventory message.
const inventoryTimeout = 10 * time.Second

// agentSynced records c's hello with the inventory and sends c its
// inventory. It runs after the welcome, on c's read goroutine.
func (h *Hub) agentSynced(c *conn, hello *proto.Hello) {
	hooks := h.opt.Inventory
	if hooks == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), inventoryTimeout)
	defer cancel()
	if err := hooks.Declared(ctx, c.id, hello.Devices); err != nil {
		c.log.Warn("cannot record the agent's devices", "err", err)
	}
	if hello.Inventory {
		h.sendInventory(ctx, c)
	}
}

func (h *Hub) sendInventory(ctx context.Context, c *conn) {
	inv, err := h.opt.Inventory.Inventory(ctx, c.id)
	if err != nil {
		c.log.Warn("cannot read the agent's inventory; it keeps what it has", "err", err)
		return
	}
	if inv != nil {
		c.sendMsg(proto.TypeInventory, "", inv)
	}
}

// agentInventory handles an agent's discovery.report and inventory.applied.
func (h *Hub) agentInventory(c *conn, env *proto.Envelope) {
	hooks := h.opt.Inventory
	if hooks == nil {
		c.reply("", proto.Errorf(proto.CodeUnsupported, "this signaling node keeps no inventory"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), inventoryTimeout)
	defer cancel()
	switch env.Type {
	case proto.TypeDiscoveryReport:
		var r proto.DiscoveryReport
		if err := proto.DecodeData(env, &r); err != nil {
			c.refuse("", err)
			return
		}
		if err := hooks.Report(ctx, c.id, &r); err != nil {
			c.refuse("", proto.Errorf(proto.CodeBadMessage, "%v", err))
		}
	case proto.TypeInventoryApplied:
		var a proto.InventoryApplied
		if err := proto.DecodeData(env, &a); err != nil {
			c.refuse("", err)
			return
		}
		h.mu.Lock()
		if h.closed || h.agents[c.id] != c {
			h.mu.Unlock()
			return // a replaced connection: the newer one answers for itself
		}
		accepted, refused := h.declareLocked(c, a.Devices)
		if h.opt.Presence != nil {
			h.opt.Presence(c.id, accepted, true)
		}
		c.sendRefusedLocked(refused)
		h.mu.Unlock()
		a.Devices = accepted
		if err := hooks.Applied(ctx, c.id, &a); err != nil {
			c.log.Warn("cannot record the agent's answer to its inventory", "err", err)
		}
		c.log.Info("agent applied its inventory", "applied", len(a.Applied), "refused", len(a.Refused), "devices", len(accepted))
	}
}

// PushInventory sends agent its inventory now, if it is connected to this
// hub, and reports whether it is.
func (h *Hub) PushInventory(ctx context.Context, agent string) bool {
	if h.opt.Inventory == nil {
		return false
	}
	h.mu.Lock()
	c := h.agents[agent]
	ok := c != nil && c.inventory
	h.mu.Unlock()
	if !ok {
		return false
	}
	h.sendInventory(ctx, c)
	return true
}

// RunDiscovery asks agent to scan its site now, if it is connected to
// this hub, and reports whether it is.
func (h *Hub) RunDiscovery(agent, reason string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.agents[agent]
	if c == nil {
		return false
	}
	c.sendMsg(proto.TypeDiscoveryRun, "", &proto.DiscoveryRun{Reason: reason})
	return true
}
