#!/usr/bin/env bash
# Runs every fuzz target in the module for the given time each (default 4s).
# Usage: scripts/fuzz.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-4s}
go=${GO:-go}
n=0
while IFS= read -r line; do
	file=${line%%:*}
	target=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $target ($fuzztime)"
	$go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 200x -parallel 2 "$pkg" >/tmp/rampart-fuzz.$$ 2>&1 || {
		cat /tmp/rampart-fuzz.$$
		rm -f /tmp/rampart-fuzz.$$
		echo "fuzz target $target in $pkg failed; the failing input is in $pkg/testdata/fuzz/$target"
		exit 1
	}
	n=$((n + 1))
done < <(git ls-files '*_test.go' | xargs grep -H -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' | sort)
rm -f /tmp/rampart-fuzz.$$
echo "fuzzed $n targets for $fuzztime each"
