package dpop_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/warrantlog/warrant/dpop"
)

// A client proves possession of its key for one request; the server
// checks the proof against the request it received and remembers its jti.
func Example() {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	proof, err := dpop.NewProof(key, "GET", "https://tickets.example/v1/tickets", now,
		dpop.ProofOptions{AccessToken: "eyJ..."})
	if err != nil {
		panic(err)
	}
	seen := dpop.NewReplayCache(1024)
	want := dpop.Request{Method: "GET", URL: "https://tickets.example/v1/tickets", AccessToken: "eyJ..."}
	_, err = dpop.Verify(proof, want, now, seen)
	fmt.Println("first use:", err)
	_, err = dpop.Verify(proof, want, now, seen)
	fmt.Println("replayed:", err)
	// Output:
	// first use: <nil>
	// replayed: the DPoP proof was used before (jti replayed)
}
