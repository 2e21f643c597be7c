package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/warrantlog/warrant/internal/s3test"
	"github.com/warrantlog/warrant/objstore"
)

// checkConditional checks Store's contract for the conditional writes on
// st: Create refuses a key that holds an object, Replace refuses a stale
// ETag and a missing key, and neither writes anything when it refuses.
// It runs on every Store, so that Memory (which the ledger's unit tests
// stand on) keeps S3's behaviour.
func checkConditional(t *testing.T, st objstore.Store) {
	ctx := context.Background()
	const key = "tile/entries/000.p/5"
	stale, current, later := []byte("stale leader's bundle"), []byte("current leader's bundle"), []byte("later bundle")

	if err := st.Create(ctx, key, stale); err != nil {
		t.Fatalf("Create of a new key: %v", err)
	}
	if err := st.Create(ctx, key, current); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("Create of a taken key: %v, want ErrExists", err)
	}
	if got, _ := st.Get(ctx, key); !bytes.Equal(got, stale) {
		t.Fatalf("a refused Create wrote: %q", got)
	}
	got, staleTag, err := st.GetWithETag(ctx, key)
	if err != nil || !bytes.Equal(got, stale) || staleTag == "" {
		t.Fatalf("GetWithETag = %q, %q, %v", got, staleTag, err)
	}
	if err := st.Replace(ctx, key, current, staleTag); err != nil {
		t.Fatalf("Replace on the ETag just read: %v", err)
	}
	_, currentTag, err := st.GetWithETag(ctx, key)
	if err != nil || currentTag == staleTag {
		t.Fatalf("ETag after Replace: %q (was %q), %v", currentTag, staleTag, err)
	}
	// A writer still holding the old ETag (its Replace landing late) is refused.
	if err := st.Replace(ctx, key, later, staleTag); !errors.Is(err, objstore.ErrChanged) {
		t.Fatalf("Replace on a stale ETag: %v, want ErrChanged", err)
	}
	if got, _ := st.Get(ctx, key); !bytes.Equal(got, current) {
		t.Fatalf("a refused Replace wrote: %q", got)
	}
	// Replace does not create.
	if err := st.Replace(ctx, "tile/entries/001", later, currentTag); !errors.Is(err, objstore.ErrChanged) {
		t.Fatalf("Replace of a missing key: %v, want ErrChanged", err)
	}
	if _, err := st.Get(ctx, "tile/entries/001"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a refused Replace created the key: %v", err)
	}
	if _, _, err := st.GetWithETag(ctx, "tile/entries/002"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("GetWithETag of a missing key: %v, want ErrNotFound", err)
	}
	// The same bytes again keep the ETag (S3's is their MD5): a caller
	// cannot use it to tell two writes of equal bytes apart.
	if err := st.Put(ctx, key, current); err != nil {
		t.Fatal(err)
	}
	if _, tag, _ := st.GetWithETag(ctx, key); tag != currentTag {
		t.Fatalf("ETag after rewriting the same bytes: %q, want %q", tag, currentTag)
	}
	// Put overwrites whatever is there.
	if err := st.Put(ctx, key, later); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Get(ctx, key); !bytes.Equal(got, later) {
		t.Fatalf("after Put: %q", got)
	}
}

func TestMemoryConditional(t *testing.T) { checkConditional(t, objstore.NewMemory()) }

func TestS3Conditional(t *testing.T) {
	srv := s3test.Start(t)
	checkConditional(t, open(t, srv, "logs/cas"))
}

// TestFaultsConditional: the fault rules apply to Create and Replace as to
// Put, and a refused condition is reported as such, not as an injected
// failure.
func TestFaultsConditional(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	f := objstore.NewFaults(mem)
	checkConditional(t, f)

	f.FailPuts(func(string) objstore.Fault { return objstore.Lost })
	if err := f.Create(ctx, "a", []byte("x")); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("Lost Create: %v", err)
	}
	if _, err := mem.Get(ctx, "a"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a Lost Create stored: %v", err)
	}
	f.FailPuts(func(string) objstore.Fault { return objstore.Persisted })
	if err := f.Create(ctx, "a", []byte("x")); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("Persisted Create: %v", err)
	}
	if err := f.Create(ctx, "a", []byte("y")); !errors.Is(err, objstore.ErrExists) || errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("Persisted Create of a taken key: %v, want ErrExists only", err)
	}
	_, tag, err := mem.GetWithETag(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Replace(ctx, "a", []byte("z"), tag); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("Persisted Replace: %v", err)
	}
	if got, _ := mem.Get(ctx, "a"); string(got) != "z" {
		t.Fatalf("a Persisted Replace did not store: %q", got)
	}
	if err := f.Replace(ctx, "a", []byte("w"), tag); !errors.Is(err, objstore.ErrChanged) || errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("Persisted Replace on a stale ETag: %v, want ErrChanged only", err)
	}
	f.FailGets(func(string) bool { return true })
	if _, _, err := f.GetWithETag(ctx, "a"); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("failed GetWithETag: %v", err)
	}
}
