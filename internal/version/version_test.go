package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/porthole-dev/porthole", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: "github.com/pion/webrtc/v4", Version: "v4.2.26"},
			{Path: "github.com/pion/turn/v4", Version: "v4.1.4"},
			{Path: "github.com/pion/logging", Version: "v0.2.4"}, // not named
			{Path: "github.com/gorilla/websocket", Version: "v1.5.3"},
		},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.time", Value: "2026-12-04T19:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
		},
	}
	tests := []struct {
		name, version, commit, want string
	}{
		{"plain go build", "", "", "porthole (devel) (commit 0123456789ab, 2026-12-04T19:00:00Z, modified)\ngo1.26.8 linux/arm64, pion/turn/v4 v4.1.4, pion/webrtc/v4 v4.2.26\n"},
		{"stamped by the Makefile", "v0.3.0-4-g0123456", "fedcba9876543210", "porthole v0.3.0-4-g0123456 (commit fedcba987654, 2026-12-04T19:00:00Z, modified)\ngo1.26.8 linux/arm64, pion/turn/v4 v4.1.4, pion/webrtc/v4 v4.2.26\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fromBuildInfo("porthole", bi, tc.version, tc.commit).String()
			if got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	if s := fromBuildInfo("x", nil, "", "").String(); !strings.HasPrefix(s, "x unknown\n") {
		t.Fatalf("without build info: %q", s)
	}
}
