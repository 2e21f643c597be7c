package objstore

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	good := []struct{ in, bucket, prefix string }{
		{"s3://warrant-log/prod", "warrant-log", "prod"},
		{"s3://warrant-log/prod/", "warrant-log", "prod"},
		{"s3://warrant-log/a/b_c/D.e-1", "warrant-log", "a/b_c/D.e-1"},
		{"s3://abc", "abc", ""},
		{"s3://abc/", "abc", ""},
		{"s3://my.bucket.example/x", "my.bucket.example", "x"},
		{"s3://" + strings.Repeat("a", 63) + "/p", strings.Repeat("a", 63), "p"},
		{"s3://abc/" + strings.Repeat("p", maxPrefixBytes), "abc", strings.Repeat("p", maxPrefixBytes)},
	}
	for _, c := range good {
		b, p, err := ParseURL(c.in)
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", c.in, b, p, err, c.bucket, c.prefix)
		}
	}
	bad := []struct{ in, why string }{
		{"", "s3://"},
		{"S3://abc/p", "s3://"},
		{"http://abc/p", "s3://"},
		{"s3:/abc/p", "s3://"},
		{" s3://abc/p", "s3://"},
		{"s3://", "3 to 63"},
		{"s3:///p", "3 to 63"},
		{"s3://ab/p", "3 to 63"},
		{"s3://" + strings.Repeat("a", 64), "3 to 63"},
		{"s3://ABC/p", "lower-case"},
		{"s3://a_b/p", "lower-case"},
		{"s3://abc:9000/p", "lower-case"},
		{"s3://user:pw@abc/p", "lower-case"},
		{"s3://abc?x=1", "lower-case"},
		{"s3://abc#f", "lower-case"},
		{"s3://-abc/p", "start and end"},
		{"s3://abc./p", "start and end"},
		{"s3://a..b/p", "between"},
		{"s3://a.-b/p", "between"},
		{"s3://192.168.1.10/p", "IP address"},
		{"s3://abc//p", "empty segment"},
		{"s3://abc/p//q", "empty segment"},
		{"s3://abc/p//", "empty segment"},
		{"s3://abc//", "empty"},
		{"s3://abc/../p", `".." segment`},
		{"s3://abc/p/.", `"." segment`},
		{"s3://abc/p?x=1", "not allowed"},
		{"s3://abc/p#x", "not allowed"},
		{"s3://abc/p%2Fq", "not allowed"},
		{"s3://abc/p q", "not allowed"},
		{"s3://abc/p\\q", "not allowed"},
		{"s3://abc/p\x00", "not allowed"},
		{"s3://abc/p\nq", "not allowed"},
		{"s3://abc/pé", "not allowed"},
		{"s3://abc/p\xff", "not allowed"},
		{"s3://abc/" + strings.Repeat("p", maxPrefixBytes+1), "limit"},
	}
	for _, c := range bad {
		b, p, err := ParseURL(c.in)
		if err == nil {
			t.Errorf("ParseURL(%q) = %q, %q; want an error", c.in, b, p)
			continue
		}
		if !strings.Contains(err.Error(), c.why) {
			t.Errorf("ParseURL(%q): %v; want it to say %q", c.in, err, c.why)
		}
	}
}

// FuzzParseURL checks that ParseURL never panics and that what it accepts is
// exactly what it says: a valid bucket and prefix that name the same place
// when written back as a URL.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://warrant-log/prod", "s3://abc/", "s3://abc//p", "s3://1.2.3.4/p", "s3://abc/p/../q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bucket, prefix, err := ParseURL(s)
		if err != nil {
			if bucket != "" || prefix != "" {
				t.Fatalf("ParseURL(%q) failed but returned %q, %q", s, bucket, prefix)
			}
			return
		}
		if err := checkBucket(bucket); err != nil {
			t.Fatalf("ParseURL(%q) accepted bucket %q: %v", s, bucket, err)
		}
		if prefix != "" {
			if err := checkPath(prefix, maxPrefixBytes); err != nil {
				t.Fatalf("ParseURL(%q) accepted prefix %q: %v", s, prefix, err)
			}
		}
		if strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") {
			t.Fatalf("ParseURL(%q) prefix %q has a leading or trailing slash", s, prefix)
		}
		canon := "s3://" + bucket
		if prefix != "" {
			canon += "/" + prefix
		}
		if s != canon && s != canon+"/" {
			t.Fatalf("ParseURL(%q) = %q, %q: not the same URL", s, bucket, prefix)
		}
		b2, p2, err := ParseURL(canon)
		if err != nil || b2 != bucket || p2 != prefix {
			t.Fatalf("ParseURL(%q) = %q, %q, %v; not stable", canon, b2, p2, err)
		}
	})
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"checkpoint", "tile/0/001", "tile/entries/x001/x234/067.p/5", "tile/3/000.p/255"} {
		if err := checkKey(k); err != nil {
			t.Errorf("checkKey(%q): %v", k, err)
		}
	}
	for _, k := range []string{"", "/checkpoint", "tile//0", "tile/0/", "../x", "tile/./0", "a b", "a?b", "a%20b", strings.Repeat("k", maxKeyBytes+1)} {
		if err := checkKey(k); err == nil {
			t.Errorf("checkKey(%q) accepted", k)
		}
	}
}
