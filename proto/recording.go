package proto

import (
	"strings"
	"unicode/utf8"
)

// Terminal recordings.
//
// The agent records every browser terminal of a session (ssh.go) as one
// asciicast v2 recording (https://docs.asciinema.org/manual/asciicast/v2/):
// a header line, then "o" events (the terminal's output, with its time)
// and "r" events (window changes). It records output only, never "i"
// (input) events: what the technician types shows only through the
// device's echo, and a password prompt does not echo, so no password
// typed at a prompt is ever recorded.
//
// The agent ships the recording in rec.chunk messages (session in the
// envelope): whole asciicast lines, numbered from 1 without gaps per
// session. Signaling appends each chunk whose Seq is the next one of the
// job's recording, skips any it already has (a chunk re-sent after a
// reconnect), and answers rec.ack with the highest Seq stored. The agent
// keeps every chunk until it is acknowledged. A recording is bounded
// (MaxRecording): past it the agent records a last "o" event saying it
// was truncated and drops the rest.

// Recording message types.
const (
	TypeRecording    MsgType = "rec.chunk" // agent → signaling: RecordingChunk
	TypeRecordingAck MsgType = "rec.ack"   // signaling → agent: RecordingAck
)

// Recording limits.
const (
	MaxRecording      = 8 << 20  // bytes of one session's recording
	MaxRecordingChunk = 24 << 10 // bytes of asciicast in one rec.chunk (JSON escaping may double it)
)

// PathJobRecording serves a job's terminal recording.
const PathJobRecording = "/v1/jobs/{id}/recording" // GET → application/x-asciicast

// ContentTypeAsciicast is the media type of a recording.
const ContentTypeAsciicast = "application/x-asciicast"

// RecordingChunk is the body of rec.chunk: whole asciicast v2 lines, each
// ending in a newline; chunk 1 starts with the header.
type RecordingChunk struct {
	Seq  uint64 `json:"seq"`
	Data string `json:"data"`
}

// RecordingAck is the body of rec.ack: every chunk of the envelope's
// session up to and including Seq is stored.
type RecordingAck struct {
	Seq uint64 `json:"seq"`
}

// Validate checks a chunk.
func (c *RecordingChunk) Validate() error {
	switch {
	case c.Seq == 0:
		return Errorf(CodeBadMessage, "rec.chunk: seq starts at 1")
	case c.Data == "" || !strings.HasSuffix(c.Data, "\n"):
		return Errorf(CodeBadMessage, "rec.chunk: data must be whole lines")
	case len(c.Data) > MaxRecordingChunk:
		return Errorf(CodeTooLarge, "rec.chunk: over %d bytes", MaxRecordingChunk)
	case !utf8.ValidString(c.Data):
		return Errorf(CodeBadMessage, "rec.chunk: not UTF-8")
	case c.Seq == 1 && !strings.HasPrefix(c.Data, `{"version":2`):
		return Errorf(CodeBadMessage, "rec.chunk: the first chunk starts with the asciicast v2 header")
	}
	return nil
}

// Validate checks an acknowledgement.
func (a *RecordingAck) Validate() error { return nil }
