#!/usr/bin/env bash
# Crash-safety harness: runs TestCrashSafety with many kill -9 rounds.
# Usage: scripts/crash.sh [ROUNDS]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
WARRANT_CRASH_ROUNDS="${1:-50}" go test ./cmd/warrant -run '^TestCrashSafety$' -count=1 -v -timeout 30m
