// Package proto holds Porthole's wire contracts and nothing else: the
// signaling envelopes exchanged over WebSockets between signaling, agents and
// technician clients, the tunnel frame protocol carried on WebRTC data
// channels, and the stable error codes both use.
//
// Every decoder here validates its input and bounds its size, because every
// byte it reads came from a peer we do not trust. The package imports only the
// standard library, performs no I/O and starts no goroutines.
//
// # Signaling
//
// A signaling message is one JSON object (one WebSocket text frame) of the form
//
//	{"v":1,"type":"offer","session":"s_…","data":{…}}
//
// where data's shape depends on type. Offers, answers and candidates use the
// browser's own shapes ({type, sdp} and {candidate, sdpMid, sdpMLineIndex,
// usernameFragment}) so the web client passes them straight to
// RTCPeerConnection. A session's messages flow:
//
//	client → signaling   POST /v1/sessions {device}   (HTTP, not a message:
//	                     answers the session id and its token)
//	client → signaling   WebSocket on /v1/session with the session's token
//	                     (one client per session; the token bound to it)
//	signaling → agent    session.open {session, device, user, expires, grant, iceServers}
//	agent → signaling    session.ready {}            (or error with session set)
//	signaling → client   session.ready {session, device, expires, iceServers}
//	client ↔ agent       offer / answer / candidate   (relayed by signaling)
//	client or agent      ice.refresh {failed}         (a relay was lost, relays.go)
//	signaling → both     ice.servers {iceServers, relays}
//	any side             session.end {reason}
//
// A session.open from a client is refused with unsupported: only signaling
// opens sessions, after the HTTP request's checks.
//
// # Tunnel
//
// Each data channel carries one exchange at a time: an HTTP request and its
// response, or one TCP connection. See tunnel.go for the frame layout.
package proto
