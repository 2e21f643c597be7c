package main

import (
	"crypto/tls"
	"flag"
	"net"
	"net/http"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/tlsfiles"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// serveSecurity are serve's transport security (TLS, mutual TLS) and abuse
// control (rate limits) flags.
type serveSecurity struct {
	tlsCert, tlsKey, clientCA string

	agentRate      float64
	agentBurst     int
	agentByteRate  float64
	agentByteBurst int
	agentQueue     int
	globalRate     float64
	globalBurst    int

	authFailureRate  float64
	authFailureBurst int
	floodRate        float64
	floodBurst       int
}

func (s *serveSecurity) register(fs *flag.FlagSet) {
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM certificate chain: serve HTTPS (HTTP/2 via ALPN) instead of plain HTTP; re-read when it changes")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&s.clientCA, "client-ca", "", "PEM CA certificates: require client certificates (mutual TLS) issued by them; a delegation's or revocation's issuer must then be the client certificate's SPIFFE ID")
	fs.Float64Var(&s.agentRate, "agent-rate", ledger.DefaultAgentRate, "appends per second allowed to each agent (issuer, or signing key of bindings and policies); 0: no limit")
	fs.IntVar(&s.agentBurst, "agent-burst", ledger.DefaultAgentBurst, "burst of appends allowed to each agent above --agent-rate")
	fs.Float64Var(&s.agentByteRate, "agent-byte-rate", ledger.DefaultAgentByteRate, "envelope bytes per second allowed to each agent; 0: no limit")
	fs.IntVar(&s.agentByteBurst, "agent-byte-burst", ledger.DefaultAgentByteBurst, "burst of envelope bytes allowed to each agent above --agent-byte-rate (at least 32768)")
	fs.IntVar(&s.agentQueue, "agent-queue", 0, "requests of one agent that may wait for the sequencer (default: an eighth of the queue, 1024)")
	fs.Float64Var(&s.globalRate, "global-rate", 0, "appends per second allowed to all agents together; 0: no limit")
	fs.IntVar(&s.globalBurst, "global-burst", 0, "burst of appends allowed above --global-rate (default: one second's worth)")
	fs.Float64Var(&s.authFailureRate, "auth-failure-rate", ledger.DefaultAuthFailureRate, "requests failing authentication allowed per second to each client address, above which it is refused before signatures are checked; 0: no limit")
	fs.IntVar(&s.authFailureBurst, "auth-failure-burst", ledger.DefaultAuthFailureBurst, "burst of requests failing authentication allowed to each client address above --auth-failure-rate")
	fs.Float64Var(&s.floodRate, "flood-byte-rate", ledger.DefaultFloodByteRate, "envelope bytes refused over their rate limits allowed per second to each client address, above which its appends are refused unread; 0: no limit")
	fs.IntVar(&s.floodBurst, "flood-byte-burst", ledger.DefaultFloodByteBurst, "burst of envelope bytes refused over their rate limits allowed to each client address above --flood-byte-rate")
}

// options sets the rate limits in o.
func (s *serveSecurity) options(o *ledger.Options) error {
	if s.agentRate < 0 || s.globalRate < 0 || s.agentByteRate < 0 {
		return usagef("--agent-rate, --agent-byte-rate and --global-rate are 0 (no limit) or more")
	}
	if s.agentByteBurst < proofs.MaxEnvelopeBytes || s.agentQueue < 0 {
		return usagef("--agent-byte-burst must be at least %d (one largest envelope) and --agent-queue not negative", proofs.MaxEnvelopeBytes)
	}
	if s.agentBurst < 1 || s.globalBurst < 0 {
		return usagef("--agent-burst must be at least 1 and --global-burst not negative")
	}
	if s.authFailureRate < 0 || s.authFailureBurst < 1 {
		return usagef("--auth-failure-rate is 0 (no limit) or more and --auth-failure-burst at least 1")
	}
	o.AuthFailureRate, o.AuthFailureBurst = s.authFailureRate, s.authFailureBurst
	if s.authFailureRate == 0 {
		o.AuthFailureRate = -1 // no budget
	}
	if s.floodRate < 0 || s.floodBurst < 1 {
		return usagef("--flood-byte-rate is 0 (no limit) or more and --flood-byte-burst at least 1")
	}
	o.FloodByteRate, o.FloodByteBurst = s.floodRate, s.floodBurst
	if s.floodRate == 0 {
		o.FloodByteRate = -1 // no budget
	}
	o.AgentRate, o.AgentBurst = s.agentRate, s.agentBurst
	if s.agentRate == 0 {
		o.AgentRate = -1 // no per-agent limit
	}
	o.AgentByteRate, o.AgentByteBurst = s.agentByteRate, s.agentByteBurst
	if s.agentByteRate == 0 {
		o.AgentByteRate = -1 // no per-agent byte limit
	}
	o.AgentQueueLength = s.agentQueue
	o.GlobalRate, o.GlobalBurst = s.globalRate, s.globalBurst
	return nil
}

// tlsConfig returns the server's TLS configuration, or nil to serve plain
// HTTP. With --client-ca, clients must present a certificate that chains
// to one of its CAs (checked by crypto/tls; the CA file is re-read when it
// changes, as is the server's key pair).
func (s *serveSecurity) tlsConfig() (*tls.Config, error) {
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	if s.tlsCert == "" {
		if s.clientCA != "" {
			return nil, usagef("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	kp, err := tlsfiles.LoadKeyPair(s.tlsCert, s.tlsKey)
	if err != nil {
		return nil, &proofs.Error{Reason: client.ReasonTLSConfig, Err: err}
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		},
	}
	if s.clientCA == "" {
		return cfg, nil
	}
	pool, err := tlsfiles.LoadPool(s.clientCA)
	if err != nil {
		return nil, &proofs.Error{Reason: client.ReasonTLSConfig, Err: err}
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = pool.CertPool()
	base := cfg.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = pool.CertPool() // the current bundle
		return c, nil
	}
	return cfg, nil
}

// handler wraps the ledger's handler: with mutual TLS, every request
// carries its client certificate's SPIFFE ID as its peer identity.
func (s *serveSecurity) handler(h http.Handler) http.Handler {
	if s.clientCA != "" {
		return ledger.PeerIdentityFromTLS(h)
	}
	return h
}

// serve serves srv on ln, over TLS when srv has a TLS configuration.
func (s *serveSecurity) serve(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// scheme is the URL scheme clients use.
func (s *serveSecurity) scheme() string {
	if s.tlsCert != "" {
		return "https"
	}
	return "http"
}

// clientTLS are the common client flags for an https:// log.
type clientTLS struct {
	ca, cert, key string
}

func (f *clientTLS) register(fs *flag.FlagSet, env *cmdEnv) {
	fs.StringVar(&f.ca, "tls-ca", env.getenv("WARRANT_TLS_CA"), "PEM CA certificates to trust for an https:// --server (default: the system's; env WARRANT_TLS_CA)")
	fs.StringVar(&f.cert, "tls-cert", env.getenv("WARRANT_TLS_CERT"), "PEM client certificate (e.g. the agent's X.509-SVID) for a server that requires mutual TLS (env WARRANT_TLS_CERT)")
	fs.StringVar(&f.key, "tls-key", env.getenv("WARRANT_TLS_KEY"), "PEM private key of --tls-cert (env WARRANT_TLS_KEY)")
}

// options returns the client options the flags ask for.
func (f *clientTLS) options() ([]client.Option, error) {
	if f.ca == "" && f.cert == "" && f.key == "" {
		return nil, nil
	}
	if (f.cert == "") != (f.key == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	cfg, err := client.TLSConfig(f.ca, f.cert, f.key)
	if err != nil {
		return nil, err
	}
	return []client.Option{client.WithTLS(cfg)}, nil
}
