package cluster

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	goldenHash = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}
	goldenTime = time.Date(2026, 12, 7, 12, 30, 0, 0, time.UTC)
)

// goldenMsgs is one message of every kind, as one node sends it to another.
var goldenMsgs = []struct {
	name string
	m    *msg
}{
	{"open", &msg{Kind: kindOpen, Call: 7, User: "alice", Agent: "agent-1", Device: "printer-1"}},
	{"reply-open", &msg{Kind: kindReply, Call: 7, Info: &proto.SessionInfo{Session: "s1", Token: "tok", Expires: goldenTime,
		ShellOrigin: "https://shell-s1.sessions.example"}}},
	{"reply-error", &msg{Kind: kindReply, Call: 8, Err: &proto.Error{Code: proto.CodeNotFound, Message: "no such session"}}},
	{"check", &msg{Kind: kindCheck, Call: 9, Token: "tok"}},
	{"reply-check", &msg{Kind: kindReply, Call: 9, Session: "s1", OK: true}},
	{"live", &msg{Kind: kindLive, Call: 10, Session: "s1"}},
	{"owner", &msg{Kind: kindOwner, Call: 11, Session: "s1"}},
	{"reply-owner", &msg{Kind: kindReply, Call: 11, User: "alice", Expires: goldenTime, OK: true}},
	{"addtoken", &msg{Kind: kindAddToken, Call: 12, Session: "s1", Hash: goldenHash[:]}},
	{"revoke", &msg{Kind: kindRevoke, Hash: goldenHash[:]}},
	{"bind", &msg{Kind: kindBind, Call: 13, Session: "s1", Hash: goldenHash[:], Bind: goldenHash[:]}},
	{"end", &msg{Kind: kindEnd, Call: 14, Session: "s1", User: "alice"}},
	{"terminate", &msg{Kind: kindTerminate, Call: 15, Session: "s1", User: "admin"}},
	{"join", &msg{Kind: kindJoin, Bridge: 3, Session: "s1", Hash: goldenHash[:], Bind: goldenHash[:], Browser: true}},
	{"frame-to-owner", &msg{Kind: kindFrame, Bridge: 3, Data: `{"v":1,"type":"hello","data":{"role":"client"}}`}},
	{"frame-to-edge", &msg{Kind: kindFrame, Bridge: 3, ToEdge: true, Data: `{"v":1,"type":"welcome"}`}},
	{"close", &msg{Kind: kindClose, Bridge: 3, ToEdge: true, Code: 1008, Data: "too many bad messages"}},
	{"fetch-open", &msg{Kind: kindFetchOpen, Call: 16, Session: "s1", Hash: goldenHash[:], Bridge: 4}},
	{"reply-fetch-open", &msg{Kind: kindReply, Call: 16, FetchID: 2}},
	{"fetch-msg", &msg{Kind: kindFetchMsg, Bridge: 4, ToEdge: true, Data: `{"v":1,"type":"fetch.credit","session":"s1","data":{"id":2,"n":8}}`}},
	{"fetch-done", &msg{Kind: kindFetchDone, Bridge: 4}},
	{"ticket", &msg{Kind: kindTicket, Call: 17, Session: "s1", Token: "ticket", Hash: goldenHash[:]}},
	{"inventory", &msg{Kind: kindInventory, Call: 18, Agent: "agent-1"}},
	{"discover", &msg{Kind: kindDiscover, Call: 19, Agent: "agent-1", Data: "asked by alice"}},
}

// checkGolden compares an encoding with testdata/golden/name.json (run
// with -update to rewrite it) and returns the file's content, trimmed,
// for the decoding half of the test.
func checkGolden(t *testing.T, name string, b []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(append(b, '\n'), want) {
		t.Errorf("encoding changed (bump Version if on purpose):\n got %s\nwant %s", b, want)
	}
	return bytes.TrimSpace(want)
}

// TestGoldenMessages freezes the messages between nodes: a change to one
// is a change of Version (run with -update to rewrite the files).
func TestGoldenMessages(t *testing.T) {
	kinds := map[string]bool{}
	for _, tc := range goldenMsgs {
		t.Run(tc.name, func(t *testing.T) {
			kinds[tc.m.Kind] = true
			b, err := encodeMsg("node-a", tc.m)
			if err != nil {
				t.Fatal(err)
			}
			want := checkGolden(t, tc.name, b)
			got, err := decodeMsg(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.m) {
				t.Errorf("decoded %+v, want %+v", got, tc.m)
			}
		})
	}
	for _, k := range []string{kindReply, kindOpen, kindCheck, kindLive, kindOwner, kindAddToken, kindRevoke, kindBind, kindEnd,
		kindTerminate, kindJoin, kindFrame, kindClose, kindFetchOpen, kindFetchMsg, kindFetchDone, kindTicket, kindInventory, kindDiscover} {
		if !kinds[k] {
			t.Errorf("no golden message of kind %s", k)
		}
	}
}

// TestMessagesOfAnotherVersionAreDropped: a node of another release is not
// understood, rather than misunderstood.
func TestMessagesOfAnotherVersionAreDropped(t *testing.T) {
	for _, raw := range []string{`{"k":"live","f":"old","c":1,"s":"s1"}`, `{"v":2,"k":"live","f":"new","c":1,"s":"s1"}`} {
		if _, err := decodeMsg([]byte(raw)); !errors.Is(err, errVersion) {
			t.Errorf("decode %s: %v, want errVersion", raw, err)
		}
	}
}
