#!/usr/bin/env bash
# Regenerates the Go code for api/ with buf and local plugins pinned in
# tools/go.mod (no remote plugins, no BSR). With --check, fails if the
# committed generated code differs from what the current .proto files produce.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
bin="${WARRANT_TOOLBIN:-$PWD/.toolbin}"
mkdir -p "$bin"
go build -modfile=tools/go.mod -o "$bin/" \
  github.com/bufbuild/buf/cmd/buf \
  google.golang.org/protobuf/cmd/protoc-gen-go \
  connectrpc.com/connect/cmd/protoc-gen-connect-go
export PATH="$bin:$PATH"
buf lint
if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp -r api "$tmp/api.before"
  buf generate
  if ! diff -r "$tmp/api.before" api; then
    cp -r "$tmp/api.before/." api/
    echo "generated code in api/ is stale: run scripts/gen.sh and commit the result" >&2
    exit 1
  fi
  echo "generated code is up to date"
else
  buf generate
fi
