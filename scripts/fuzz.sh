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
	run() { $go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 200x -parallel 2 "$pkg" >/tmp/rampart-fuzz.$$ 2>&1; }
	# Go's fuzzing coordinator sometimes reports "context deadline exceeded" when its time is
	# up on a loaded machine, without any failing input: that is the engine, not a finding, so
	# such a run is tried once more. A real failure writes its input and fails again.
	run || { grep -q 'context deadline exceeded' /tmp/rampart-fuzz.$$ && ! grep -q 'Failing input written' /tmp/rampart-fuzz.$$ &&
		echo "fuzz $pkg $target: the fuzzing engine timed out without a finding; running it again" && run; } || {
		cat /tmp/rampart-fuzz.$$
		rm -f /tmp/rampart-fuzz.$$
		echo "fuzz target $target in $pkg failed; the failing input is in $pkg/testdata/fuzz/$target"
		exit 1
	}
	n=$((n + 1))
done < <(git ls-files '*_test.go' | xargs grep -H -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' | sort)
rm -f /tmp/rampart-fuzz.$$
echo "fuzzed $n targets for $fuzztime each"
