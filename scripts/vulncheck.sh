#!/usr/bin/env bash
# Runs govulncheck (pinned in tools/go.mod) over the main module and bench/
# against the local database that scripts/vulndb.sh builds from the pinned
# golang.org/x/vulndb module. Fails on any finding, except standard-library
# findings listed in tools/vulndb/accepted.txt (fixed only in a newer Go than
# the one that builds warrant); a finding in a module is fixed by bumping
# that module in go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
db=$(scripts/vulndb.sh)
accepted=tools/vulndb/accepted.txt
report=$(mktemp)
trap 'rm -f "$report"' EXIT

status=0
seen=""
for dir in . bench; do
  echo "-- govulncheck $dir"
  rc=0
  go tool -modfile=tools/go.mod govulncheck -db "file://$db" -show version -C "$dir" ./... >"$report" || rc=$?
  cat "$report"
  # 3 means "vulnerabilities found"; anything else but 0 is a failure to run.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then exit "$rc"; fi
  # A finding is a "Vulnerability #N: ID" block naming "Standard library"
  # and/or one "Module: PATH" line per affected module.
  bad=$(awk -v accepted="$accepted" '
    BEGIN { while ((getline l < accepted) > 0) if (l !~ /^#/ && l != "") { split(l, f, " "); ok[f[1]] = 1 } }
    /^Vulnerability #[0-9]+: / { id = $3 }
    /^  Standard library$/ { if (!(id in ok)) print id " in the standard library" }
    /^  Module: / { print id " in " $2 }
  ' "$report")
  seen="$seen $(awk '/^Vulnerability #[0-9]+: / { print $3 }' "$report")"
  if [ -n "$bad" ]; then
    echo "govulncheck $dir: findings not accepted in $accepted:" >&2
    echo "$bad" >&2
    status=1
  fi
done

for id in $(awk '!/^#/ && NF { print $1 }' "$accepted"); do
  case " $(echo $seen) " in
    *" $id "*) ;;
    *) echo "note: $id in $accepted is no longer reported; delete its line" ;;
  esac
done
exit "$status"
