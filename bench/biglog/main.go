// Command biglog builds a large warrant log quickly, in process, to measure
// what a big log costs: resident memory while serving it, disk per entry,
// and proof rates (`warrant serve --data DIR` then `warrant bench --mode
// inclusion`). Every entry is a real root grant, signed by one of 64
// registered human issuers and checked by the ledger like any append.
//
//	go run ./biglog --data /tmp/big --n 10000000
//
// It writes DIR (the log) and DIR.registrar.{key,pub} (the registrar key
// to pass to `warrant serve --registrar-key`).
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/loadgen"
	"github.com/warrantlog/warrant/proofs"
)

func main() {
	data := flag.String("data", "", "data directory to create")
	n := flag.Int("n", 1_000_000, "delegations to append")
	chunk := flag.Int("chunk", 100_000, "envelopes signed ahead at a time")
	flag.Parse()
	if *data == "" {
		log.Fatal("--data is required")
	}
	ctx := context.Background()
	_, regKey, _ := ed25519.GenerateKey(rand.Reader)
	registrar, err := client.NewSigner(regKey)
	if err != nil {
		log.Fatal(err)
	}
	privPEM, _ := cryptoutils.MarshalPrivateKeyToPEM(regKey)
	os.WriteFile(*data+".registrar.key", privPEM, 0o600)
	os.WriteFile(*data+".registrar.pub", registrar.Public().PEM(), 0o644)
	l, err := ledger.Open(ctx, ledger.Options{Dir: *data, RegistrarKeys: []*proofs.PublicKey{registrar.Public()},
		Logger: slog.New(slog.DiscardHandler), AgentRate: -1})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	register := func(id string, human bool) *client.Signer {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		s, _ := client.NewSigner(k)
		payload, _ := proofs.MarshalPayload(&proofs.KeyBinding{Agent: id, PublicKey: s.Public().DER, Tier: proofs.TierExecute, Human: human,
			IssuedAt: proofs.FormatTime(time.Now()), Nonce: fmt.Sprintf("biglog-%x", s.Public().DER[len(s.Public().DER)-8:])})
		env, _ := registrar.SignEnvelope(proofs.PayloadTypeAgent, payload)
		if _, err := l.Append(ctx, env); err != nil {
			log.Fatalf("registering %s: %v", id, err)
		}
		return s
	}
	delegate := "spiffe://big.example/agent/worker"
	register(delegate, false)
	const issuers = 64
	signers := make([]*client.Signer, issuers)
	for k := range signers {
		signers[k] = register(fmt.Sprintf("spiffe://big.example/human/issuer-%d", k), true)
	}
	start := time.Now()
	var done atomic.Int64
	for base := 0; base < *n; base += *chunk {
		m := min(*chunk, *n-base)
		per := (m + issuers - 1) / issuers
		var envs [][]byte
		for k, s := range signers {
			part, err := loadgen.Presign(s, fmt.Sprintf("spiffe://big.example/human/issuer-%d", k), delegate, per, 600, fmt.Sprintf("b%dk%d", base, k))
			if err != nil {
				log.Fatal(err)
			}
			envs = append(envs, part...)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 64*runtime.GOMAXPROCS(0); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(len(envs)); i = next.Add(1) - 1 {
					if _, err := l.Append(ctx, envs[i]); err != nil {
						log.Fatalf("append: %v", err)
					}
					done.Add(1)
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		fmt.Printf("%d entries in %v (%.0f/s), checkpoint size %d\n", done.Load(), el.Round(time.Second), float64(done.Load())/el.Seconds(), l.Checkpoint().Size)
	}
}
