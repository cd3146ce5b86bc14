package proto

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeSSHOpenRefusesBadLogins(t *testing.T) {
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
	for _, tc := range []struct {
		name, json string
		code       Code
	}{
		{"ok password", `{"port":22,"user":"root","password":"pw","cols":80,"rows":24}`, ""},
		{"ok key", fmt.Sprintf(`{"port":22,"user":"root","privateKey":%q,"cols":80,"rows":24}`, key), ""},
		{"both", fmt.Sprintf(`{"port":22,"user":"root","password":"pw","privateKey":%q,"cols":80,"rows":24}`, key), CodeBadRequest},
		{"neither", `{"port":22,"user":"root","cols":80,"rows":24}`, CodeBadRequest},
		{"no user", `{"port":22,"user":"","password":"pw","cols":80,"rows":24}`, CodeBadRequest},
		{"control in user", `{"port":22,"user":"a\nb","password":"pw","cols":80,"rows":24}`, CodeBadRequest},
		{"port 0", `{"port":0,"user":"root","password":"pw","cols":80,"rows":24}`, CodeBadRequest},
		{"huge", `{"port":22,"user":"root","password":"pw","cols":80000,"rows":24}`, CodeBadRequest},
		{"not pem", `{"port":22,"user":"root","privateKey":"ssh-ed25519 AAAA","cols":80,"rows":24}`, CodeBadRequest},
		{"term space", `{"port":22,"user":"root","password":"pw","term":"x y","cols":80,"rows":24}`, CodeBadRequest},
		{"unknown field", `{"port":22,"user":"root","password":"pw","cols":80,"rows":24,"host":"10.0.0.1"}`, CodeBadMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSSHOpen([]byte(tc.json))
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Fatalf("err %v, want code %s", err, tc.code)
			}
		})
	}
}

// The login's secrets never reach an error or a formatted value.
func TestSSHOpenNeverShowsSecrets(t *testing.T) {
	const pw = "hunter2-very-secret"
	o := &SSHOpen{Port: 22, User: "root", Password: pw, Cols: 80, Rows: 24}
	for _, s := range []string{fmt.Sprint(o), fmt.Sprintf("%v %+v %#v %s", o, o, o, o)} {
		if strings.Contains(s, pw) {
			t.Fatalf("formatted login shows the password: %s", s)
		}
	}
	bad := `{"port":22,"user":"root","password":"` + pw + `","cols":80,"rows":24,"x":1}`
	for _, b := range []string{bad, bad[:len(bad)-3], strings.Replace(bad, `"cols":80`, `"cols":"80"`, 1)} {
		if _, err := DecodeSSHOpen([]byte(b)); err == nil || strings.Contains(err.Error(), pw) {
			t.Fatalf("error %v shows the password or is nil", err)
		}
	}
}

func FuzzDecodeSSH(f *testing.F) {
	f.Add([]byte(`{"port":22,"user":"root","password":"pw","cols":80,"rows":24}`))
	f.Add([]byte(`{"cols":80,"rows":24}`))
	f.Add([]byte(`{"hostKey":"SHA256:abc","firstUse":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o, err := DecodeSSHOpen(b); err == nil {
			if o.Cols < 1 || o.Rows < 1 || o.User == "" {
				t.Fatalf("accepted %v", o)
			}
		}
		_, _ = DecodeSSHResize(b)
		_, _ = DecodeSSHOpened(b)
	})
}
