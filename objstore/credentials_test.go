package objstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s3.env")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestReadCredentialsFile(t *testing.T) {
	p := writeFile(t, "# warrant's bucket\nAWS_ACCESS_KEY_ID=AKIDEXAMPLE\n\n  AWS_SECRET_ACCESS_KEY=wJalr/K7MDENG+bPxRfi=CY  \n", 0o600)
	id, secret, err := ReadCredentialsFile(p)
	if err != nil || id != "AKIDEXAMPLE" || secret != "wJalr/K7MDENG+bPxRfi=CY" {
		t.Fatalf("ReadCredentialsFile = %q, %q, %v", id, secret, err)
	}
	if _, _, err := ReadCredentialsFile(writeFile(t, "AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n", 0o400)); err != nil {
		t.Errorf("a read-only owner file: %v", err)
	}

	bad := []struct{ content, why string }{
		{"", "no AWS_ACCESS_KEY_ID"},
		{"AWS_ACCESS_KEY_ID=a\n", "no AWS_SECRET_ACCESS_KEY"},
		{"AWS_SECRET_ACCESS_KEY=b\n", "no AWS_ACCESS_KEY_ID"},
		{"AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=\n", "bare non-empty"},
		{"AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=\"b\"\n", "bare non-empty"},
		{"AWS_ACCESS_KEY_ID=a b\nAWS_SECRET_ACCESS_KEY=b\n", "bare non-empty"},
		{"AWS_ACCESS_KEY_ID=a\nAWS_ACCESS_KEY_ID=c\nAWS_SECRET_ACCESS_KEY=b\n", "given twice"},
		{"export AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n", "unknown key"},
		{"AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\nAWS_SESSION_TOKEN=c\n", ":3: unknown key"},
		{"AWS_ACCESS_KEY_ID a\n", "want KEY=VALUE"},
		{strings.Repeat("#", maxCredentialsFileBytes+1), "limit"},
	}
	for _, c := range bad {
		_, _, err := ReadCredentialsFile(writeFile(t, c.content, 0o600))
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("ReadCredentialsFile(%.40q): %v; want it to say %q", c.content, err, c.why)
		}
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		_, _, err := ReadCredentialsFile(writeFile(t, "AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n", mode))
		if err == nil || !strings.Contains(err.Error(), "readable by others") || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %o: %v; want a refusal", mode, err)
		}
	}
	if _, _, err := ReadCredentialsFile(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	if _, _, err := ReadCredentialsFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
}
