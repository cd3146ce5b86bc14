package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type rec struct {
	Seq uint64 `json:"seq"`
	V   string `json:"v"`
}

func TestRead(t *testing.T) {
	seq := func(r *rec) uint64 { return r.Seq }
	check := func(r *rec) error {
		if r.Seq == 0 {
			return errors.New("no sequence number")
		}
		return nil
	}
	for _, tc := range []struct {
		name, file string
		want       int
		err        string
	}{
		{"empty", "", 0, ""},
		{"whole", `{"seq":4,"v":"a"}` + "\n" + `{"seq":5,"v":"b"}` + "\n", 2, ""},
		{"torn last line", `{"seq":1,"v":"a"}` + "\n" + `{"seq":2,"v`, 1, "line 2: malformed"},
		{"gap", `{"seq":1}` + "\n" + `{"seq":3}` + "\n", 1, "line 2: out of sequence"},
		{"refused by check", `{"seq":1}` + "\n" + `{"v":"x"}` + "\n", 1, "line 2: no sequence number"},
		{"garbage", "\x00\x01 not json\n", 0, "line 1: malformed"},
		{"line over the bound", `{"seq":1,"v":"` + strings.Repeat("x", 200) + `"}` + "\n", 0, "line 1: bufio.Scanner: token too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "s.log")
			if err := os.WriteFile(name, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Read(name, 128, seq, check)
			if len(got) != tc.want {
				t.Errorf("%d records, want %d", len(got), tc.want)
			}
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func TestSessionsIgnoresOtherNames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"sess0001abcd.log", "sess0002abcd.log", "not a session.log", "sess0003abcd.other"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := Sessions(dir, ".log")
	if err != nil || strings.Join(ids, ",") != "sess0001abcd,sess0002abcd" {
		t.Fatalf("%v %v", ids, err)
	}
}
