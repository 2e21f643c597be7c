#!/usr/bin/env bash
# Builds a local Go vulnerability database and prints its directory, for
# `govulncheck -db file://DIR`. The database host is not reachable from CI,
# but the Go module proxy is, and the module golang.org/x/vulndb holds the
# same data as OSV files (data/osv). tools/vulndb/go.mod pins that module;
# its own cmd/indexdb writes the layout govulncheck reads (index/db.json,
# index/modules.json, index/vulns.json, ID/<id>.json). The data is as of the
# pinned module's commit, which becomes the database's "modified" time (the
# OSV files in the repository carry none), so `govulncheck -show version`
# prints the real date. To move the data forward: in tools/vulndb,
# `go get golang.org/x/vulndb@latest && go mod tidy`, and update the date
# in the README's CI paragraph.
#
# Usage: scripts/vulndb.sh [DIR]   (default .toolbin/vulndb; rebuilt only
# when the pinned version changes)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
out="${1:-$PWD/.toolbin/vulndb}"
bin="${WARRANT_TOOLBIN:-$PWD/.toolbin}"

mod() { (cd tools/vulndb && "$@"); }
mod go mod download golang.org/x/vulndb
info=$(mod go list -m \
  -f '{{.Version}} {{.Time.UTC.Format "2006-01-02T15:04:05Z"}} {{.Dir}}' golang.org/x/vulndb)
read -r version when src <<<"$info"

if [ "$(cat "$out/VERSION" 2>/dev/null)" = "$version" ] && [ -f "$out/index/db.json" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$bin"
mod go build -o "$bin/" golang.org/x/vulndb/cmd/indexdb
tmp="$out.tmp"
rm -rf "$tmp"
"$bin/indexdb" -vulns "$src/data/osv" -out "$tmp" >&2
# govulncheck reads a file:// database uncompressed; drop the .gz copies,
# and the stale compressed db.json with them.
find "$tmp" -name '*.json.gz' -delete
printf '{"modified":"%s"}' "$when" > "$tmp/index/db.json"
echo "$version" > "$tmp/VERSION"
rm -rf "$out"
mv "$tmp" "$out"
echo "$out"
