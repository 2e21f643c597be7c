package tlsfiles

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrantlog/warrant/internal/testpki"
)

// TestReload: a rotated key pair or CA bundle is picked up; a broken
// rewrite keeps the last good one.
func TestReload(t *testing.T) {
	checkEvery = 0
	t.Cleanup(func() { checkEvery = time.Second })
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	first := ca.SVID(t, "spiffe://example.org/a")
	certFile, keyFile := first.Write(t, dir, "svid")
	caFile := ca.Write(t, dir, "ca")
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := LoadPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := kp.Certificate().Certificate[0]; !bytes.Equal(got, first.Cert.Raw) {
		t.Fatal("not the first certificate")
	}

	// Rotate: new files, with a later modification time.
	second := ca.SVID(t, "spiffe://example.org/a")
	second.Write(t, dir, "svid")
	other := testpki.NewCA(t, "other")
	other.Write(t, dir, "ca")
	later := time.Now().Add(time.Minute)
	for _, f := range []string{certFile, keyFile, caFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if got := kp.Certificate().Certificate[0]; !bytes.Equal(got, second.Cert.Raw) {
		t.Fatal("the rotated certificate was not picked up")
	}
	if !pool.CertPool().Equal(other.Pool()) {
		t.Fatal("the rotated CA bundle was not picked up")
	}

	// A half-written file keeps the last good pair.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERT"), 0o600); err != nil {
		t.Fatal(err)
	}
	even := later.Add(time.Minute)
	os.Chtimes(certFile, even, even)
	if got := kp.Certificate().Certificate[0]; !bytes.Equal(got, second.Cert.Raw) {
		t.Fatal("a broken rewrite replaced the last good certificate")
	}
	if _, err := LoadKeyPair(filepath.Join(dir, "missing.crt"), keyFile); err == nil {
		t.Fatal("loaded a missing file")
	}
}
