package objstore

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxCredentialsFileBytes bounds a credentials file: two short lines.
const maxCredentialsFileBytes = 4 << 10

// ReadCredentialsFile reads S3 credentials from a file holding the two lines
// AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... (blank lines and lines
// starting with '#' are skipped), the form serve --s3-credentials takes, so the
// secret need not sit in the environment of every process. Like the log key,
// the file must not be readable by group or others (chmod 600): a secret that
// other users can read is refused rather than used. Anything else in the file,
// a key given twice or a value missing is refused too, so a typo is not
// silently a different configuration.
func ReadCredentialsFile(path string) (accessKeyID, secretAccessKey string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("objstore: S3 credentials file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", fmt.Errorf("objstore: S3 credentials file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("objstore: S3 credentials file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", "", fmt.Errorf("objstore: S3 credentials file %s is readable by others (mode %o): chmod 600 it", path, perm)
	}
	if fi.Size() > maxCredentialsFileBytes {
		return "", "", fmt.Errorf("objstore: S3 credentials file %s is %d bytes, limit %d", path, fi.Size(), maxCredentialsFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialsFileBytes+1))
	if err != nil {
		return "", "", fmt.Errorf("objstore: S3 credentials file %s: %w", path, err)
	}
	if len(data) > maxCredentialsFileBytes {
		return "", "", fmt.Errorf("objstore: S3 credentials file %s is over %d bytes", path, maxCredentialsFileBytes)
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			return "", "", fmt.Errorf("objstore: S3 credentials file %s:%d: want KEY=VALUE", path, line)
		}
		if k != "AWS_ACCESS_KEY_ID" && k != "AWS_SECRET_ACCESS_KEY" {
			return "", "", fmt.Errorf("objstore: S3 credentials file %s:%d: unknown key %q (want AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY)", path, line, k)
		}
		if _, dup := vals[k]; dup {
			return "", "", fmt.Errorf("objstore: S3 credentials file %s:%d: %s given twice", path, line, k)
		}
		if v == "" || strings.ContainsAny(v, " \t\"'") {
			return "", "", fmt.Errorf("objstore: S3 credentials file %s:%d: %s must be a bare non-empty value", path, line, k)
		}
		vals[k] = v
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if vals[k] == "" {
			return "", "", fmt.Errorf("objstore: S3 credentials file %s: no %s line", path, k)
		}
	}
	return vals["AWS_ACCESS_KEY_ID"], vals["AWS_SECRET_ACCESS_KEY"], nil
}
