package main

import (
	"bytes"
	"context"
	"crypto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warrantlog/warrant/dpop"
)

// TestAuthzCommand: `warrant authz` finds the issuer and its JWKS from a
// running `warrant serve --tokens`, and answers Envoy's Check over gRPC:
// a token from `warrant token` with a proof made from the planner's key
// file passes with the route's scope, and is refused without its proof,
// replayed, and on a route that needs a scope it lacks. Its usage errors
// exit 2.
func TestAuthzCommand(t *testing.T) {
	e := newE2E(t)
	e.srv.kill(syscall.SIGTERM)
	e.srv = startServer(t, e.dir, e.env, e.addr, "--registrar-key", "registrar.pub", "--tokens")
	const api = "https://tickets.example"
	d := e.delegate("alice.state", "--dest", api)
	tok := strings.TrimSpace(mustWarrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", api, "--state", "planner.state"))

	for _, args := range [][]string{
		{"--audience", api},
		{"--route", "/tickets=tickets:read"},
		{"--route", "/tickets=tickets:read", "--audience", api, "--audience-from", "host"},
		{"--route", "tickets=tickets:read", "--audience", api},
		{"--route", "/tickets=tickets:read", "--audience-from", "path"},
		{"--route", "/tickets=tickets:read", "--audience", api, "extra"},
	} {
		if r := warrant(t, e.dir, e.env, append([]string{"authz"}, args...)...); r.code != 2 || !strings.HasPrefix(r.stderr, "error: usage: ") {
			t.Errorf("authz %v: exit %d, %q", args, r.code, r.stderr)
		}
	}

	addr := freeAddr(t)
	cmd := exec.Command(warrantBin, "authz", "--listen", addr, "--audience-from", "host",
		"--route", "/tickets=tickets:read", "--route", "POST /tickets=tickets:write")
	cmd.Dir, cmd.Env = e.dir, e.env
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
	})
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	az := authv3.NewAuthorizationClient(cc)

	pemKey, err := os.ReadFile(filepath.Join(e.dir, "planner.key"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemKey, cryptoutils.SkipPassword)
	if err != nil {
		t.Fatal(err)
	}
	check := func(method, path string, headers map[string]string) *authv3.CheckResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: method, Host: "tickets.example", Path: path, Scheme: "https", Headers: headers}}}}
		var resp *authv3.CheckResponse
		deadline := time.Now().Add(2 * time.Minute)
		for {
			// Wait for the listener: the first call may come before it.
			resp, err = az.Check(ctx, req, grpc.WaitForReady(true))
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("Check: %v\n%s", err, logs.String())
		}
		return resp
	}
	proof := func(method, u string) string {
		p, err := dpop.NewProof(priv.(crypto.Signer), method, u, time.Now(), dpop.ProofOptions{AccessToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The first answer shows authz is serving: a proof made before it
	// started is refused (its replay cache cannot know older proofs).
	if r := check("GET", "/tickets/1", map[string]string{}); r.GetDeniedResponse() == nil {
		t.Fatalf("no token: %v", r)
	}
	p := proof("GET", api+"/tickets/1")
	ok := check("GET", "/tickets/1", map[string]string{"authorization": "DPoP " + tok, "dpop": p})
	if ok.GetOkResponse() == nil {
		t.Fatalf("denied: %v\n%s", ok, logs.String())
	}
	for name, r := range map[string]*authv3.CheckResponse{
		"no proof":      check("GET", "/tickets/1", map[string]string{"authorization": "DPoP " + tok}),
		"replayed":      check("GET", "/tickets/1", map[string]string{"authorization": "DPoP " + tok, "dpop": p}),
		"missing scope": check("POST", "/tickets", map[string]string{"authorization": "DPoP " + tok, "dpop": proof("POST", api+"/tickets")}),
	} {
		if r.GetDeniedResponse() == nil || !strings.HasPrefix(headerValue(r, "www-authenticate"), "DPoP error=") {
			t.Errorf("%s: %v", name, r)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("authz after SIGTERM: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "authz serving") || !strings.Contains(logs.String(), "issuer="+e.url()) {
		t.Errorf("authz logs:\n%s", logs.String())
	}
}

func headerValue(r *authv3.CheckResponse, name string) string {
	for _, h := range r.GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}
