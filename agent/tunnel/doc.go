// Package tunnel carries HTTP exchanges and TCP streams over WebRTC data
// channels with the frame protocol of proto/tunnel.go.
//
// The technician side is a Client: an http.RoundTripper and a TCP dialer
// over a pool of data channels it opens itself (label "porthole", ordered,
// reliable). The agent side is a Server: it accepts the channels the
// client opens and serves each one's exchanges, one at a time, against an
// http.Handler and a TCP dialer supplied by the caller (agent/deviceproxy).
//
// Both sides move bytes with flow control: a write blocks while the
// channel's SCTP send buffer holds more than its high mark (the window
// the path's RTT needs, 1–4 MiB: channel.go) and resumes when it drained
// to a quarter of it (pion's detached writes never block on their own). Bodies are never buffered whole; frames carry at most
// proto.MaxChunk bytes of data.
//
// Channels are reused like HTTP/1.1 keep-alive connections: pion never
// frees a closed channel and fails at stream id 32,766 (pion/webrtc#2672),
// so opening one per request would leak. A channel goes back to the pool
// once both directions of its exchange ended; a channel on which an
// exchange failed mid-way is closed and dropped.
//
// # Cancelling after the request ended
//
// The protocol lets a side stop early by sending FrameAbort in its own
// direction. A client whose request direction already ended with FrameEnd
// (a GET whose response is still streaming, or a TCP stream after
// CloseWrite) cancels by sending one FrameAbort after its FrameEnd. The
// agent treats it as "stop": if its own direction is still open it ends it
// with FrameAbort (code canceled); if the exchange is already over, the
// stray FrameAbort is ignored — it cannot belong to a later exchange,
// because the client sends the next head only after it. The agent never
// sends anything after its own terminal frame, so a client never sees a
// frame on an idle channel.
package tunnel
