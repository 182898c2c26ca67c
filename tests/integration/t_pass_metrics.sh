#!/bin/bash
# The scheduler's pass instrument (certherd_scheduler_pass_seconds and the
# *_total counters in /metrics, read by bench/serve.sh) on a real daemon
# against Pebble: present and consistent (max >= last, sums >= max, CPU of
# the loop thread not above the pass's wall time by more than a clock
# tick), counting every pass (one per second while idle), and the due
# query with the validity copied into the domain rows (schema 2): 30 new
# names become valid, 10 of them asked to renew come back renewed with
# new certificates.
# asan: yes
# timeout: 300
. "$(dirname "$0")/lib.sh"

ca_start || { fail "test CA starts"; finish; }
STATE=$TEST_TMP/state
CONF=$TEST_TMP/certherd.conf
cat >"$CONF" <<CONF
[acme]
directory = $ACME_DIRECTORY
ca_bundle = $CA_BUNDLE
email = ops@example.com

[store]
state_dir = $STATE

[http]
listen = 127.0.0.1:$HTTP01_PORT

[api]
socket = $STATE/api.sock

[preflight]
enabled = false
CONF
ch() { "$CERTHERD" -c "$CONF" "$@"; }
metrics() { curl -s --max-time 5 --unix-socket "$STATE/api.sock" http://x/metrics; }
# m NAME: the value of one sample line (NAME with its labels)
m() { metrics | awk -v n="$1" '$1 == n { print $2 }'; }
n_valid() { ch domains ls --json 2>/dev/null | jq -s '[.[] | select(.state == "valid")] | length'; }
all_valid() { [ "$(n_valid)" = "$1" ]; }

bg serve "$CERTHERD" -c "$CONF" serve
check "daemon starts" wait_for 30 test -S "$STATE/api.sock"
schema() {
	python3 -c 'import sqlite3, sys
print(sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True).execute("PRAGMA user_version").fetchone()[0])' "$STATE/certherd.db"
}
check "the store is at schema version 2" test "$(schema)" = 2

for i in $(seq -w 1 30); do echo "m$i.example.com"; done >"$TEST_TMP/names.txt"
check "add 30 domains" ch domains add --file "$TEST_TMP/names.txt"
check "all 30 become valid" wait_for 90 all_valid 30

metrics >"$TEST_TMP/metrics1.txt"
for s in last_wall max_wall last_cpu max_cpu; do
	check "metrics have certherd_scheduler_pass_seconds{stat=\"$s\"}" \
		grep -Eq "^certherd_scheduler_pass_seconds\{stat=\"$s\"\} [0-9]+\.[0-9]{6}$" "$TEST_TMP/metrics1.txt"
done
for c in passes_total pass_wall_seconds_total pass_cpu_seconds_total; do
	check "metrics have certherd_scheduler_$c" grep -q "^certherd_scheduler_$c [0-9]" "$TEST_TMP/metrics1.txt"
done
val() { awk -v n="$1" '$1 == n { print $2 }' "$TEST_TMP/metrics1.txt"; }
P1=$(val certherd_scheduler_passes_total)
SW=$(val certherd_scheduler_pass_wall_seconds_total)
SC=$(val certherd_scheduler_pass_cpu_seconds_total)
MW=$(val 'certherd_scheduler_pass_seconds{stat="max_wall"}')
MC=$(val 'certherd_scheduler_pass_seconds{stat="max_cpu"}')
LW=$(val 'certherd_scheduler_pass_seconds{stat="last_wall"}')
note "passes=$P1 sum_wall=$SW sum_cpu=$SC max_wall=$MW max_cpu=$MC last_wall=$LW"
awkt() { awk "BEGIN { exit !($1) }" </dev/null; }
# 30 names issued: at least one pass started them, one per job's end after
check "at least 30 passes counted ($P1)" awkt "$P1 >= 30"
check "the longest pass took time (max_wall $MW > 0, max_cpu $MC > 0)" awkt "$MW > 0 && $MC > 0"
check "max_wall >= last_wall" awkt "$MW >= $LW"
check "the sums hold the longest pass (sum_wall $SW >= $MW, sum_cpu $SC >= $MC)" \
	awkt "$SW >= $MW && $SC >= $MC"
# thread CPU clocks tick at the scheduler's granularity: allow 10 ms
check "loop CPU in passes does not exceed their wall time ($SC vs $SW)" awkt "$SC <= $SW + 0.01"

# Idle: one pass per tick (1 s), counted.
sleep 3
P2=$(m certherd_scheduler_passes_total)
check "idle passes are counted (1 per second: $P1 -> $P2 in 3 s)" awkt "$P2 - $P1 >= 2 && $P2 - $P1 <= 6"

# Renewals through the due query: the renewed are VALID and due with a
# certificate (ranked by its validity from the domain row).
head -10 "$TEST_TMP/names.txt" >"$TEST_TMP/renew.txt"
serial() { ch domains show --json "$1" 2>/dev/null | jq -r '.certificate.serial // ""'; }
for n in $(cat "$TEST_TMP/renew.txt"); do serial "$n" >"$TEST_TMP/serial-$n"; done
bad=0
for n in $(cat "$TEST_TMP/renew.txt"); do ch renew "$n" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "ask 10 renewals" test $bad = 0
renewed_all() {
	local n
	for n in $(cat "$TEST_TMP/renew.txt"); do
		[ "$(serial "$n")" != "$(cat "$TEST_TMP/serial-$n")" ] || return 1
	done
}
check "all 10 get new certificates" wait_for 90 renewed_all
check "30 still valid" wait_for 20 all_valid 30
bad=0
for n in $(cat "$TEST_TMP/names.txt"); do verify_cert "$STATE" "$n" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "every live/ certificate is good" test $bad = 0
P3=$(m certherd_scheduler_passes_total)
check "the renewals' passes are counted ($P2 -> $P3)" awkt "$P3 - $P2 >= 10"
finish
