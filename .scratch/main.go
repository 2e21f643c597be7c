package main

import (
	"context"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"

	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

func main() {
	pem, _ := os.ReadFile(os.Args[2])
	reg, err := proofs.ParsePublicKeyPEM(pem)
	if err != nil {
		panic(err)
	}
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: os.Args[1], RegistrarKeys: []*proofs.PublicKey{reg}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	os.WriteFile(os.Args[1]+"/log.vkey", []byte(l.VerifierKey()), 0o644)
	go http.ListenAndServe("127.0.0.1:6060", nil)
	http.ListenAndServe("127.0.0.1:8791", ledger.NewHandler(l))
}
