// Package cluster routes sessions across the signaling nodes of a cluster.
//
// The HTTP layer (package server) asks everything it needs of sessions
// through one interface, Sessions. OneNode implements it with this node's
// hub alone; a Router implements it for a cluster, with the hub and the
// bus (package bus) and nothing else: each operation is tried on the local
// hub first and, when the session or agent lives on another node, asked of
// that node (a call over the bus), as netbird's signal server delivers
// locally when the peer is on this node and hands the message to a
// cross-node dispatcher otherwise.
//
// A session belongs to the node its agent is connected to (the owner),
// where the hub runs it as in a single node. Another node (the edge)
// serves the technician's requests for it by asking the owner, the
// technician's WebSocket by bridging it (bridge.go: its frames cross the
// bus to the owner, whose hub serves them through a hub.Socket that sends
// and receives bus messages), and the signaling fallback's exchanges by
// relaying their fetch messages (fetch.go). Nothing about sessions is
// replicated.
//
// Nodes speak one JSON message type (msg.go), versioned and frozen by the
// golden files in testdata/.
package cluster
