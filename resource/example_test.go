package resource_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/warrantlog/warrant/resource"
)

// An API accepts warrant tokens issued for its own URI: listing tickets
// needs tickets:read; closing one needs tickets:write and a live answer
// from the issuer that the token's chain is still in force.
func ExampleVerifier_Protect() {
	v, err := resource.New(resource.Config{
		Resource:         "https://tickets.example/api",
		Issuer:           "https://warrant.example",
		ResourceMetadata: "https://tickets.example/.well-known/oauth-protected-resource/api",
		// Introspector: &resource.Introspector{Key: serviceKey},
	})
	if err != nil {
		log.Fatal(err)
	}
	list := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := resource.FromContext(r.Context())
		fmt.Fprintf(w, "tickets for %s, read by %s (the chain of actors: %v)\n", c.Subject, c.ClientID, c.Actor.Chain())
	})
	mux := http.NewServeMux()
	mux.Handle("GET /api/tickets", v.Protect(list, resource.Rule{Scopes: []string{"tickets:read"}}))
	mux.Handle("GET /.well-known/oauth-protected-resource/api", v.Metadata("tickets", "tickets:read", "tickets:write"))
	_ = mux // http.ListenAndServe(":8443", mux), behind TLS
}
