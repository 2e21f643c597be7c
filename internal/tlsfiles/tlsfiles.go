// Package tlsfiles loads TLS certificates, keys and CA bundles from PEM
// files and reloads them when the files change, so that short-lived
// certificates (SPIFFE X.509-SVIDs rotate hourly, written to disk by an
// agent such as spiffe-helper) are picked up without a restart. A reload
// that fails (a file half-written, a key that does not match) keeps the
// last good material and is retried on the next use.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// checkEvery is how often the files are checked for changes at most (a
// variable for tests).
var checkEvery = time.Second

// stamp identifies a version of a set of files.
type stamp []struct {
	mod  time.Time
	size int64
}

func stat(paths ...string) (stamp, error) {
	s := make(stamp, len(paths))
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		s[i].mod, s[i].size = fi.ModTime(), fi.Size()
	}
	return s, nil
}

func (s stamp) equal(o stamp) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if !s[i].mod.Equal(o[i].mod) || s[i].size != o[i].size {
			return false
		}
	}
	return true
}

// reloader holds a value loaded from files and reloads it when they change.
type reloader[T any] struct {
	paths []string
	load  func() (T, error)

	mu      sync.Mutex
	val     T
	stamp   stamp
	checked time.Time
}

func newReloader[T any](load func() (T, error), paths ...string) (*reloader[T], error) {
	r := &reloader[T]{paths: paths, load: load}
	st, err := stat(paths...)
	if err != nil {
		return nil, err
	}
	if r.val, err = load(); err != nil {
		return nil, err
	}
	r.stamp, r.checked = st, time.Now()
	return r, nil
}

func (r *reloader[T]) get() T {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= checkEvery {
		r.checked = now
		if st, err := stat(r.paths...); err == nil && !st.equal(r.stamp) {
			if v, err := r.load(); err == nil {
				r.val, r.stamp = v, st
			}
		}
	}
	return r.val
}

// KeyPair is a certificate chain and its private key, from PEM files.
type KeyPair struct{ r *reloader[*tls.Certificate] }

// LoadKeyPair loads certFile (the certificate chain, leaf first) and keyFile.
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	r, err := newReloader(func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading %s and %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &KeyPair{r}, nil
}

// Certificate returns the current key pair.
func (k *KeyPair) Certificate() *tls.Certificate { return k.r.get() }

// Pool is a set of CA certificates, from a PEM file.
type Pool struct{ r *reloader[*x509.CertPool] }

// LoadPool loads the PEM certificates in file; it must hold at least one.
func LoadPool(file string) (*Pool, error) {
	r, err := newReloader(func() (*x509.CertPool, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			return nil, errors.New(file + " holds no PEM certificate")
		}
		return p, nil
	}, file)
	if err != nil {
		return nil, err
	}
	return &Pool{r}, nil
}

// CertPool returns the current pool.
func (p *Pool) CertPool() *x509.CertPool { return p.r.get() }
