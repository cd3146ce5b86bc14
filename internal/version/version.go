// Package version says which build a binary is, for every binary's
// --version: the version and commit the Makefile stamps in with -ldflags
// (-X …/internal/version.Version=… -X …/internal/version.Commit=…), else
// what the Go toolchain recorded in the build (module version,
// vcs.revision, vcs.time, vcs.modified), the Go version, and the versions
// of the pion libraries the binary links.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
)

// Set at link time by the Makefile; empty in a plain `go build`.
var (
	Version = ""
	Commit  = ""
)

// Info describes one build.
type Info struct {
	Binary   string            `json:"binary"`
	Version  string            `json:"version"`
	Commit   string            `json:"commit,omitempty"`
	Time     string            `json:"time,omitempty"` // commit time (vcs.time)
	Modified bool              `json:"modified,omitempty"`
	Go       string            `json:"go"`
	Platform string            `json:"platform"`
	Pion     map[string]string `json:"pion,omitempty"` // module path → version
}

// Get returns the build information of the running binary.
func Get(binary string) Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(binary, bi, Version, Commit)
}

func fromBuildInfo(binary string, bi *debug.BuildInfo, version, commit string) Info {
	i := Info{Binary: binary, Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if i.Version == "" {
			i.Version = "unknown"
		}
		return i
	}
	i.Go = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if i.Commit == "" {
				i.Commit = s.Value
			}
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		case "GOOS":
			i.Platform = s.Value + i.Platform[strings.Index(i.Platform, "/"):]
		case "GOARCH":
			i.Platform = i.Platform[:strings.Index(i.Platform, "/")+1] + s.Value
		}
	}
	if i.Version == "" {
		i.Version = bi.Main.Version // "(devel)" for a local build
		if i.Version == "" {
			i.Version = "(devel)"
		}
	}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		if pionModule(d.Path) {
			if i.Pion == nil {
				i.Pion = map[string]string{}
			}
			i.Pion[d.Path] = d.Version
		}
	}
	return i
}

// pionModule reports whether path is one of the pion libraries worth
// naming in a bug report: webrtc, ice, dtls, sctp, turn.
func pionModule(path string) bool {
	for _, m := range []string{"webrtc", "ice", "dtls", "sctp", "turn"} {
		if path == "github.com/pion/"+m || strings.HasPrefix(path, "github.com/pion/"+m+"/v") {
			return true
		}
	}
	return false
}

// String is the --version text: one line with the version and commit,
// one with the toolchain and the pion libraries.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", i.Binary, i.Version)
	var meta []string
	if i.Commit != "" {
		c := i.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		meta = append(meta, "commit "+c)
	}
	if i.Time != "" {
		meta = append(meta, i.Time)
	}
	if i.Modified {
		meta = append(meta, "modified")
	}
	if len(meta) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(meta, ", "))
	}
	fmt.Fprintf(&b, "\n%s %s", i.Go, i.Platform)
	paths := make([]string, 0, len(i.Pion))
	for p := range i.Pion {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		fmt.Fprintf(&b, ", %s %s", strings.TrimPrefix(p, "github.com/"), i.Pion[p])
	}
	b.WriteByte('\n')
	return b.String()
}
