package client

import (
	"crypto/tls"
	"errors"
	"net/http"
	"time"

	"github.com/warrantlog/warrant/internal/tlsfiles"
	"github.com/warrantlog/warrant/proofs"
)

// ReasonTLSConfig is the reason code of unusable TLS material.
const ReasonTLSConfig = proofs.ReasonTLSConfigInvalid

// TLSConfig builds the TLS configuration for an https:// log from PEM
// files: caFile, the CA certificates to trust (empty: the system's roots),
// and certFile and keyFile, a client certificate and its key for a server
// that requires mutual TLS (both or neither). With mutual TLS the
// certificate is the agent's X.509-SVID: the log accepts from it only
// events whose issuer is the SPIFFE ID it names. The certificate files are
// re-read when they change (SVIDs rotate), so a long-running client keeps
// working across rotations.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := tlsfiles.LoadPool(caFile)
		if err != nil {
			return nil, &proofs.Error{Reason: ReasonTLSConfig, Err: err}
		}
		cfg.RootCAs = pool.CertPool()
	}
	if (certFile == "") != (keyFile == "") {
		return nil, &proofs.Error{Reason: ReasonTLSConfig, Err: errors.New("a client certificate needs both its certificate and its key file")}
	}
	if certFile != "" {
		kp, err := tlsfiles.LoadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, &proofs.Error{Reason: ReasonTLSConfig, Err: err}
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		}
	}
	return cfg, nil
}

// WithTLS makes the client use cfg for https:// logs (HTTP/2 where the
// server offers it). It replaces the HTTP client, like WithHTTPClient: of
// the two, the later option wins.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg
		t.ForceAttemptHTTP2 = true
		c.httpClient = &http.Client{Timeout: 60 * time.Second, Transport: t}
	}
}
