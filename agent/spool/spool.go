// Package spool reads back what the agent keeps on disk until signaling
// acknowledges it (the access log, terminal recordings): one file per
// session in a directory, one JSON record per line, numbered in sequence.
// Writers append a line per record and empty the file once everything in
// it is acknowledged; a crash can leave a torn last line, which ends what
// is read.
package spool

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

// Sessions returns the session ids that have a spool file name+ext in
// dir, sorted; files not named for a session are left alone.
func Sessions(dir, ext string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, name := range names {
		if id := strings.TrimSuffix(filepath.Base(name), ext); proto.ValidSessionID(id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Read reads the records of a spool file. Each line must decode into a T
// that check accepts and whose seq follows the previous one's; the first
// line that does not (a torn line, garbage, a gap) ends the read, and the
// records before it are returned with an error naming the line. A line
// longer than maxLine bytes ends it the same way.
func Read[T any](name string, maxLine int, seq func(*T) uint64, check func(*T) error) ([]T, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, min(64<<10, maxLine)), maxLine) // the larger of the two bounds a line
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return out, fmt.Errorf("line %d: malformed: %w", len(out)+1, err)
		}
		if err := check(&v); err != nil {
			return out, fmt.Errorf("line %d: %w", len(out)+1, err)
		}
		if len(out) > 0 && seq(&v) != seq(&out[len(out)-1])+1 {
			return out, fmt.Errorf("line %d: out of sequence", len(out)+1)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("line %d: %w", len(out)+1, err)
	}
	return out, nil
}
