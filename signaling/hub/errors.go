package hub

import "github.com/porthole-dev/porthole/proto"

// Errors returned by the hub's API. Compare with errors.Is; proto.CodeOf
// gives their code.
var (
	ErrClosed       = &proto.Error{Code: proto.CodeUnavailable, Message: "signaling is shutting down"}
	ErrNotFound     = &proto.Error{Code: proto.CodeNotFound, Message: "no such device"}
	ErrNoSession    = &proto.Error{Code: proto.CodeNotFound, Message: "no such session"}
	ErrAgentOffline = &proto.Error{Code: proto.CodeAgentOffline, Message: "the device's agent is not connected"}
	ErrReadyTimeout = &proto.Error{Code: proto.CodeUnavailable, Message: "the agent did not answer in time"}
	ErrCanceled     = &proto.Error{Code: proto.CodeCanceled, Message: "the request was canceled"}
	ErrAgentLost    = &proto.Error{Code: proto.CodeAgentOffline, Message: "the agent disconnected"}
	ErrAmbiguous    = &proto.Error{Code: proto.CodeBadMessage, Message: "several agents declare this device id; name the agent"}
)
