package policy

import "errors"

// Sentinel errors returned (wrapped) by Policy.Check and Policy.CheckIP.
// Compare with errors.Is.
var (
	// ErrInvalidPeer: the peer address is not a usable unicast transport
	// address (zero value, or port 0).
	ErrInvalidPeer = errors.New("policy: invalid peer address")
	// ErrFamilyMismatch: after unmapping, the peer's address family differs
	// from the allocation's relayed address family (RFC 6156 §4.2 requires 443
	// Peer Address Family Mismatch).
	ErrFamilyMismatch = errors.New("policy: peer address family does not match the allocation")
	// ErrDeniedRange: the peer lies in a range denied by default (loopback,
	// private, link-local, CGNAT, multicast, reserved, …), directly or
	// embedded in a NAT64/6to4/Teredo address, and no Allow prefix covers it.
	ErrDeniedRange = errors.New("policy: peer address in a denied range")
	// ErrServicePort: the peer is one of the relay's own service sockets
	// (STUN/TURN listeners, metrics, admin).
	ErrServicePort = errors.New("policy: peer is a service port of this relay")
	// ErrOwnHost: the peer is an address of the relay host itself (an
	// interface address, the public IP, a subnet broadcast address, loopback
	// or unspecified) on a port that is not a live allocation's relayed port.
	ErrOwnHost = errors.New("policy: peer is the relay host itself")
)
