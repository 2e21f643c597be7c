package objstore_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/objstore"
)

// TestS3UnannouncedLength checks the bound on a body whose length the server
// does not announce (chunked): a hostile or broken endpoint streaming without
// end must not grow the reader's memory past MaxObjectBytes. No S3 server
// sends such a body, so this one is written by hand.
func TestS3UnannouncedLength(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("list-type") {
			w.Header().Set("Content-Type", "application/xml")
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`))
			return
		}
		chunk, streamed := make([]byte, 64<<10), 0
		for streamed <= 2*objstore.MaxObjectBytes {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			streamed += len(chunk)
		}
	}))
	defer srv.Close()
	st, err := objstore.NewS3(t.Context(), objstore.S3Config{Bucket: "bucket", Endpoint: srv.URL, AccessKeyID: "a", SecretAccessKey: "b"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Get(t.Context(), "tile/entries/000")
	if !errors.Is(err, objstore.ErrTooLarge) || !strings.Contains(err.Error(), "more than the limit") {
		t.Fatalf("Get of an endless body: %v, want ErrTooLarge", err)
	}
}
