#!/bin/bash
# tests/run.sh [NAME...] — certherd's whole test suite.
#
#  1. scripts/install-deps.sh                   (skip: CERTHERD_SKIP_DEPS=1)
#  2. build in build/ and, unless QUICK=1, in build-asan/ with
#     ASan+UBSan and in build-release/ (-O3, werror: gcc warns there of
#     what -O2 does not see; compiled only, nothing runs against it)
#                                               (skip: SKIP_BUILD=1)
#  3. unit tests: meson test --suite unit, in both builds; then each
#     libFuzzer target for FUZZ_SECONDS (skip: SKIP_FUZZ=1)
#  4. integration tests: every tests/integration/t_*.sh, each in its own
#     network namespace (tests/netns.sh) with its own Pebble, against
#     build/certherd; files with a line `# asan: yes` also against
#     build-asan/certherd. Per-file timeout: a line `# timeout: SECONDS`,
#     else TEST_TIMEOUT (default 600). TEST_JOBS (default 2) run at once;
#     each one's output is printed when it has finished.
#
# NAME...: run only the integration tests whose file name contains a NAME
# (and no unit tests). KEEP_TMP=1 keeps every test's TEST_TMP (failed ones
# are always kept).
# The last line printed is exactly "N passed, N failed"; the exit status is
# nonzero if anything failed or nothing ran.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()

say() { printf '\n=== %s\n' "$*"; }
pass() { PASSED=$((PASSED + $1)); }
failed() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf 'not ok - %s\n' "$1"; }

QUICK=${QUICK:-0}
FILTERS=("$@")
ASAN_ENV=(ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)

# 1. dependencies
if [ "${CERTHERD_SKIP_DEPS:-0}" != 1 ]; then
	say "dependencies (scripts/install-deps.sh)"
	if ! ./scripts/install-deps.sh; then
		failed "scripts/install-deps.sh"
	fi
fi

# 2. builds
BUILDS=(build)
[ "$QUICK" = 1 ] || BUILDS+=(build-asan build-release)
declare -A BUILD_OK
build_one() {
	local dir=$1
	local -a opts=()
	[ "$dir" = build-asan ] && opts=(-Db_sanitize=address,undefined -Db_lundef=false)
	[ "$dir" = build-release ] && opts=(-Dbuildtype=release -Dwerror=true)
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "${opts[@]}" || return 1
	fi
	meson compile -C "$dir"
}
for b in "${BUILDS[@]}"; do
	if [ "${SKIP_BUILD:-0}" = 1 ]; then
		BUILD_OK[$b]=1
		continue
	fi
	say "build: $b"
	if build_one "$b"; then
		BUILD_OK[$b]=1
	else
		BUILD_OK[$b]=0
		failed "build ($b)"
	fi
done

# 3. unit tests, counted from meson's testlog.json (one line per test).
run_unit() {
	local b=$1 rc log=$1/meson-logs/testlog.json
	local -a envs=()
	[ "$b" = build-asan ] && envs=("${ASAN_ENV[@]}")
	say "unit tests: $b"
	if [ ! -f "$b/build.ninja" ]; then
		if [ "${SKIP_BUILD:-0}" = 1 ]; then
			echo "# unit tests ($b): not configured (SKIP_BUILD=1), skipped"
		else
			failed "unit tests ($b): not configured"
		fi
		return
	fi
	rm -f "$log"
	env "${envs[@]}" meson test -C "$b" --suite unit --print-errorlogs --no-rebuild
	rc=$?
	local n_ok=0 n_fail=0 n_skip=0 line name result
	if [ -f "$log" ]; then
		while IFS= read -r line; do
			name=$(sed -n 's/^{"name": "\([^"]*\)".*/\1/p' <<<"$line")
			result=$(grep -o '"result": "[A-Z]*"' <<<"$line" | head -1 | sed 's/.*: "\(.*\)"/\1/')
			case "$result" in
			OK | EXPECTEDFAIL) n_ok=$((n_ok + 1)) ;;
			SKIP) n_skip=$((n_skip + 1)) ;;
			*) n_fail=$((n_fail + 1)); failed "unit ($b): $name: $result" ;;
			esac
		done <"$log"
	fi
	pass "$n_ok"
	SKIPPED=$((SKIPPED + n_skip))
	if [ $rc != 0 ] && [ $n_fail = 0 ]; then
		failed "unit tests ($b): meson test exited $rc"
	fi
	printf '# unit (%s): %d passed, %d failed, %d skipped\n' "$b" "$n_ok" "$n_fail" "$n_skip"
}
if [ ${#FILTERS[@]} = 0 ]; then
	for b in "${BUILDS[@]}"; do
		[ "$b" = build-release ] && continue # compile only
		[ "${BUILD_OK[$b]}" = 1 ] && run_unit "$b"
	done
fi

# 3b. fuzz smoke: every libFuzzer target runs FUZZ_SECONDS (default 15)
# from its seed corpus, so the targets keep building and a regression a
# fuzzer finds quickly fails the suite. Long campaigns: see fuzz/meson.build.
run_fuzz() {
	local t name dict scratch
	say "fuzz smoke (${FUZZ_SECONDS:-15} s per target)"
	if [ ! -f build-fuzz/build.ninja ]; then
		CC=clang meson setup build-fuzz -Dfuzz=true >/dev/null || { failed "fuzz: setup"; return; }
	fi
	meson compile -C build-fuzz >/dev/null || { failed "fuzz: build"; return; }
	for t in build-fuzz/fuzz/fuzz_*; do
		[ -x "$t" ] && [ -f "$t" ] || continue
		name=${t##*/fuzz_}
		scratch=$(mktemp -d)
		dict=()
		[ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
		if "$t" "${dict[@]}" -max_total_time="${FUZZ_SECONDS:-15}" -timeout=10 \
			-rss_limit_mb=2048 "$scratch" "fuzz/corpus/$name" >"$scratch.log" 2>&1; then
			pass 1
			echo "ok - fuzz_$name: $(grep -o 'Done [0-9]* runs' "$scratch.log")"
		else
			failed "fuzz_$name"
			tail -n 40 "$scratch.log"
		fi
		rm -rf "$scratch" "$scratch.log"
	done
}
if [ ${#FILTERS[@]} = 0 ] && [ "${SKIP_FUZZ:-0}" != 1 ]; then
	run_fuzz
fi

# 4. integration tests
selected() {
	local f=$1 pat
	[ ${#FILTERS[@]} = 0 ] && return 0
	for pat in "${FILTERS[@]}"; do
		case "$(basename "$f")" in *"$pat"*) return 0 ;; esac
	done
	return 1
}

# One integration test file against one build, in the background: its
# output and, when it fails, its logs go to $dir/report, its counts to
# $dir/result (PASS n / SKIP n / FAIL text lines), merged by collect.
integration_job() {
	local f=$1 b=$2 dir=$3 name tmp out rc limit n_ok n_fail n_skip bin
	name="$(basename "$f") [$b]"
	limit=$(sed -n 's/^# timeout: *\([0-9][0-9]*\).*/\1/p' "$f" | head -1)
	limit=${limit:-${TEST_TIMEOUT:-600}}
	bin="$ROOT/$b/certherd"
	[ "${BUILD_OK[$b]}" = 1 ] || bin="$ROOT/$b/certherd-build-failed"
	tmp=$(mktemp -d "/tmp/certherd-$(basename "$f" .sh)-$b.XXXXXX")
	out=$tmp/output.txt
	local -a envs=(CERTHERD="$bin" SRC="$ROOT" TEST_TMP="$tmp")
	[ "$b" = build-asan ] && envs+=("${ASAN_ENV[@]}")
	{
		printf '\n=== integration: %s (timeout %ss, TEST_TMP=%s)\n' "$name" "$limit" "$tmp"
		timeout -k 15 "$limit" tests/netns.sh env "${envs[@]}" bash "$f" </dev/null >"$out" 2>&1
		rc=$?
		cat "$out"
	} >>"$dir/report"
	# Exit 75 with the marker: the test CA wedged (lib.sh finish, docs/
	# pebble.md). Run the file once more on a fresh CA; only that counts.
	if [ "$rc" = 75 ] && grep -q '^# PEBBLE-WEDGED' "$out" && [ -z "${RETRIED:-}" ]; then
		echo "# $name: Pebble wedged; running it again on a fresh CA (kept $tmp)" >>"$dir/report"
		RETRIED=1 integration_job "$f" "$b" "$dir"
		return
	fi
	n_ok=$(grep -E '^ok( |$)' "$out" | grep -cv '# SKIP')
	n_skip=$(grep -E '^ok( |$)' "$out" | grep -c '# SKIP')
	n_fail=$(grep -cE '^not ok( |$)' "$out")
	{
		echo "PASS $n_ok"
		echo "SKIP $n_skip"
		grep -E '^not ok( |$)' "$out" | sed "s/^not ok - /FAIL $name: /"
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			echo "FAIL $name timed out after ${limit}s"
		elif [ "$rc" != 0 ] && [ "$n_fail" = 0 ]; then
			echo "FAIL $name exited $rc without a 'not ok' line"
		elif [ "$rc" = 0 ] && [ "$n_fail" != 0 ]; then
			echo "FAIL $name printed 'not ok' but exited 0"
		elif [ "$rc" = 0 ] && [ "$n_ok" = 0 ] && [ "$n_skip" = 0 ]; then
			echo "FAIL $name ran no checks"
		fi
	} >"$dir/result"
	if [ "$rc" != 0 ] || [ "$n_fail" != 0 ]; then
		local log
		while IFS= read -r log; do
			printf -- '----- %s (last 200 lines)\n' "$log"
			tail -n 200 "$log"
		done < <(find "$tmp" -name '*.log' -type f | sort) >>"$dir/report"
		printf -- '----- kept %s\n' "$tmp" >>"$dir/report"
	elif [ "${KEEP_TMP:-0}" != 1 ]; then
		rm -rf "$tmp"
	fi
}

# Print a finished job's report and add its counts.
collect() {
	local dir=$1 kind rest
	cat "$dir/report"
	while IFS=' ' read -r kind rest; do
		case $kind in
		PASS) pass "$rest" ;;
		SKIP) SKIPPED=$((SKIPPED + rest)) ;;
		FAIL) FAILED=$((FAILED + 1)); FAILURES+=("$rest") ;;
		esac
	done <"$dir/result"
	rm -rf "$dir"
}

# TEST_JOBS files at a time (default 2): each runs in its own network and
# PID namespace with its own CA, so they do not meet; most of their time is
# spent waiting on the CA, timers or child processes.
declare -A JOB_DIR
running=0
reap_one() {
	local pid
	wait -n -p pid
	collect "${JOB_DIR[$pid]}"
	unset "JOB_DIR[$pid]"
	running=$((running - 1))
}
start_job() {
	local dir
	while [ "$running" -ge "${TEST_JOBS:-2}" ]; do reap_one; done
	dir=$(mktemp -d /tmp/certherd-job.XXXXXX)
	: >"$dir/report"
	: >"$dir/result"
	integration_job "$1" "$2" "$dir" &
	JOB_DIR[$!]=$dir
	running=$((running + 1))
}

shopt -s nullglob
for f in tests/integration/t_*.sh; do
	selected "$f" || continue
	start_job "$f" build
	if [ "$QUICK" != 1 ] && grep -qx '# asan: yes' "$f"; then
		start_job "$f" build-asan
	fi
done
while [ "$running" -gt 0 ]; do reap_one; done

# Summary
say "summary"
if [ ${#FAILURES[@]} -gt 0 ]; then
	echo "failures:"
	printf '  %s\n' "${FAILURES[@]}"
fi
[ "$SKIPPED" = 0 ] || echo "$SKIPPED skipped"
if [ $((PASSED + FAILED)) = 0 ]; then
	echo "nothing ran"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ] && [ $((PASSED + FAILED)) != 0 ]
