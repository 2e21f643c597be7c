package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

func runRegister(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "register", "--registrar-key KEY --agent SPIFFE_ID --pub PUB [--tier draft|execute] [--human] [--withdraw [--revoke-issued]]")
	var cf clientFlags
	cf.register(fs, env)
	regKey := fs.String("registrar-key", env.getenv("WARRANT_REGISTRAR_KEY"), "registrar's private key (PEM) (env WARRANT_REGISTRAR_KEY, as scripts/cluster.sh up prints it)")
	agent := fs.String("agent", "", "SPIFFE ID of the agent or human principal")
	pubPath := fs.String("pub", "", "the agent's public key (PEM)")
	tier := fs.String("tier", proofs.TierDraft, "trust tier: draft or execute")
	human := fs.Bool("human", false, "register a human principal (may issue root grants and approve)")
	withdraw := fs.Bool("withdraw", false, "withdraw the agent's key: no binding in force until it is registered again")
	revokeIssued := fs.Bool("revoke-issued", false, "with --withdraw: also revoke every delegation the agent issued so far, with cascade")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *regKey == "" || *agent == "" || *pubPath == "" {
		return usagef("register needs --registrar-key (or env WARRANT_REGISTRAR_KEY), --agent and --pub, and no arguments")
	}
	if *revokeIssued && !*withdraw {
		return usagef("--revoke-issued goes with --withdraw")
	}
	signer, err := loadSigner(*regKey)
	if err != nil {
		return err
	}
	pemBytes, err := os.ReadFile(*pubPath)
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonKeyUnreadable, Err: err}
	}
	pub, err := proofs.ParsePublicKeyPEM(pemBytes)
	if err != nil {
		return err
	}
	kb := &proofs.KeyBinding{
		Agent:     *agent,
		PublicKey: pub.DER,
		Tier:      *tier,
		Human:     *human,

		Revoked:      *withdraw,
		RevokeIssued: *revokeIssued,
	}
	envelope, err := signer.SignKeyBinding(kb, time.Now())
	if err != nil {
		return err
	}
	e, err := appendSigned(ctx, env, &cf, envelope)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("registered %s (tier %s%s, key %s)", kb.Agent, kb.Tier, map[bool]string{true: ", human"}[kb.Human], pub.ID)
	if kb.Revoked {
		msg = withdrawal(kb)
	}
	return printEntry(env, cf.json, e, msg)
}

// withdrawal describes a key binding that withdraws a key.
func withdrawal(kb *proofs.KeyBinding) string {
	if kb.RevokeIssued {
		return fmt.Sprintf("withdrew the key of %s and revoked every delegation it issued before this entry, and everything under them", kb.Agent)
	}
	return fmt.Sprintf("withdrew the key of %s (the delegations it issued are not revoked, but until it registers again no token is issued for them, for any delegation under them or for a delegation to it, and tokens issued under them introspect inactive)", kb.Agent)
}

func runDelegate(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "delegate", "--key KEY --issuer ID --to ID --task PATH [--scope S]... [--data-class C]... [--dest D]... --ttl DUR [--parent DELEGATION_ID] [--request-out FILE]")
	var cf clientFlags
	cf.register(fs, env)
	keyPath := fs.String("key", "", "issuer's private key (PEM)")
	issuer := fs.String("issuer", "", "issuer's SPIFFE ID")
	to := fs.String("to", "", "delegate's SPIFFE ID")
	task := fs.String("task", "", "task type, a /-path such as /tickets/triage")
	var scopes, classes, dests stringList
	fs.Var(&scopes, "scope", "scope granted (repeatable)")
	fs.Var(&classes, "data-class", "data class the delegate may touch (repeatable)")
	fs.Var(&dests, "dest", "destination system the delegate may call (repeatable)")
	ttl := fs.Duration("ttl", 0, "lifetime: expires_at = now + ttl")
	parent := fs.String("parent", "", "id of the delegation that gave the issuer its authority (empty for a root grant)")
	rootSubject := fs.String("root-subject", "", "human principal at the root of the chain (default: the parent's, or the issuer for a root grant)")
	id := fs.String("id", "", "delegation id (default: a fresh random id)")
	nonce := fs.String("nonce", "", "nonce, unique per issuer (default: a fresh random one)")
	purpose := fs.String("purpose", "", "free-text purpose")
	traceID := fs.String("trace-id", "", "trace id (W3C trace context)")
	a2aTask := fs.String("a2a-task-id", "", "A2A task id")
	mcpReq := fs.String("mcp-request-id", "", "MCP request id")
	requestOut := fs.String("request-out", "", "write the signed request to FILE instead of sending it")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *keyPath == "" || *issuer == "" || *to == "" || *task == "" || *ttl <= 0 {
		return usagef("delegate needs --key, --issuer, --to, --task and a positive --ttl, and no arguments")
	}
	signer, err := loadSigner(*keyPath)
	if err != nil {
		return err
	}
	now := time.Now()
	d := &proofs.Delegation{
		ID:           *id,
		Issuer:       *issuer,
		Delegate:     *to,
		RootSubject:  *rootSubject,
		Parent:       *parent,
		Task:         *task,
		Scopes:       scopes,
		DataClasses:  classes,
		Destinations: dests,
		ExpiresAt:    proofs.FormatTime(now.Add(*ttl)),
		Nonce:        *nonce,
		TraceID:      *traceID,
		A2ATaskID:    *a2aTask,
		MCPRequestID: *mcpReq,
		Purpose:      *purpose,
	}
	var c *client.Client
	if d.RootSubject == "" && d.Parent != "" {
		if c, err = cf.newClient(); err != nil {
			return err
		}
		if d.RootSubject, err = c.RootSubject(ctx, d.Parent, d.Issuer); err != nil {
			return err
		}
	}
	envelope, err := signer.SignDelegation(d, now)
	if err != nil {
		return err
	}
	if *requestOut != "" {
		if err := writeNew(*requestOut, append(envelope, '\n'), 0o644); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.stdout, map[string]any{"id": d.ID, "request": *requestOut})
		}
		fmt.Fprintf(env.stdout, "wrote signed request for delegation %s to %s (not sent)\n", d.ID, *requestOut)
		return nil
	}
	if c == nil {
		if c, err = cf.newClient(); err != nil {
			return err
		}
	}
	env.appended = &appendCmd{key: d.ID, requestOut: true}
	e, err := c.Append(ctx, envelope)
	if err != nil {
		return err
	}
	return printEntry(env, cf.json, e, fmt.Sprintf("delegation %s: %s -> %s, task %s, expires %s", d.ID, d.Issuer, d.Delegate, d.Task, d.ExpiresAt))
}

// appendSigned appends an envelope the command has just signed, verified.
func appendSigned(ctx context.Context, env *cmdEnv, cf *clientFlags, envelope []byte) (*client.Entry, error) {
	c, err := cf.newClient()
	if err != nil {
		return nil, err
	}
	env.appended = &appendCmd{}
	return c.Append(ctx, envelope)
}

func loadSigner(path string) (*client.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonKeyUnreadable, Err: err}
	}
	s, err := client.LoadSigner(b)
	if err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonKeyInvalid, Err: fmt.Errorf("%s: %w", path, err)}
	}
	return s, nil
}

// entryJSON is the --json shape for an entry.
type entryJSON struct {
	ID         string         `json:"id"`
	Index      uint64         `json:"index"`
	Kind       string         `json:"kind"`
	Decision   string         `json:"decision,omitempty"`
	Reasons    []string       `json:"reasons,omitempty"`
	Duplicate  bool           `json:"duplicate"`
	LeafHash   string         `json:"leaf_hash"`
	LogTime    string         `json:"log_time"`
	Checkpoint checkpointJSON `json:"checkpoint"`
	Payload    any            `json:"payload,omitempty"`
	Signers    []string       `json:"signers,omitempty"`
	Actor      string         `json:"actor,omitempty"`
	Status     *statusJSON    `json:"status,omitempty"`
}

type statusJSON struct {
	State      string `json:"state"`
	RevokedVia string `json:"revoked_via,omitempty"`
}

type checkpointJSON struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"`
}

func cpJSON(cp *proofs.Checkpoint) checkpointJSON {
	return checkpointJSON{Origin: cp.Origin, Size: cp.Size, Root: hex.EncodeToString(cp.Root)}
}

func toEntryJSON(e *client.Entry) entryJSON {
	j := entryJSON{
		ID:         e.ID,
		Index:      e.Index,
		Kind:       e.Leaf.Kind,
		Duplicate:  e.Duplicate,
		LeafHash:   hex.EncodeToString(proofs.LeafHash(e.Leaf.Raw)),
		LogTime:    e.Leaf.LogTime,
		Checkpoint: cpJSON(e.Checkpoint),
	}
	if e.Leaf.Decision != nil {
		j.Decision = e.Leaf.Decision.Outcome
		j.Reasons = e.Leaf.Decision.Reasons
	}
	return j
}

// printEntry reports an appended entry.
func printEntry(env *cmdEnv, asJSON bool, e *client.Entry, what string) error {
	if asJSON {
		return printJSON(env.stdout, toEntryJSON(e))
	}
	verb := "appended"
	if e.Duplicate {
		verb = "already in the log"
	}
	fmt.Fprintf(env.stdout, "%s: %s\nindex %d, id %s\ncheckpoint %s\ninclusion proof verified against the signed checkpoint\n",
		verb, what, e.Index, e.ID, e.Checkpoint)
	return nil
}
