#!/bin/bash
# certherd serve's deploy hook and webhook against real Pebble
# (docs/daemon.md "Deploy hook and webhook"):
#  - 40 domains added at once with hooks.batch = 2s: fewer hook runs than
#    domains, every domain delivered exactly once, the names in
#    CERTHERD_DOMAINS_FILE, on stdin and counted in CERTHERD_DOMAIN_COUNT,
#    CERTHERD_LIVE_DIR set, the hook's stdout logged; a real HTTP server
#    on loopback gets one JSON POST per run naming every domain with its
#    serial, expiry and live/ paths;
#  - a failing hook (exit 3) and a webhook answering 500 once: the webhook
#    is retried and accepted, the hook failure is logged and in each
#    domain's history, and not retried;
#  - a hanging hook is killed (its whole process group) at hooks.timeout
#    while the webhook fails every attempt: both in the history; the
#    daemon keeps issuing and later runs work again;
#  - SIGTERM with a batch pending runs it before exiting; a batch pending
#    at a kill -9 is delivered after the restart (the journal).
# asan: yes
# timeout: 500
. "$(dirname "$0")/lib.sh"

ca_start || { fail "test CA starts"; finish; }
STATE=$TEST_TMP/state
CONF=$TEST_TMP/certherd.conf
RUNS=$TEST_TMP/runs       # one set of files per hook run
POSTS=$TEST_TMP/posts     # one file per webhook request
WH_PORT=18099
mkdir -p "$RUNS" "$POSTS"

# The deploy hook: records what it was given, then behaves as the file
# hook-mode says (ok, fail, hang).
cat >"$TEST_TMP/hook.sh" <<'HOOK'
#!/bin/sh
r=$RUNS/$(date +%s%N)
cp "$CERTHERD_DOMAINS_FILE" "$r.file"
cat >"$r.stdin"
printf '%s\n' "$CERTHERD_DOMAIN_COUNT" >"$r.count"
printf '%s\n' "$CERTHERD_LIVE_DIR" >"$r.live"
echo "deployed $CERTHERD_DOMAIN_COUNT names"
case $(cat "$TEST_TMP/hook-mode" 2>/dev/null) in
fail) echo "cannot reload the web server" >&2; exit 3 ;;
hang) sleep 6061; echo "not reached" ;;
esac
exit 0
HOOK
chmod +x "$TEST_TMP/hook.sh"
echo ok >"$TEST_TMP/hook-mode"
export RUNS TEST_TMP

# The webhook receiver: stores each request (headers and body), answers
# as the file wh-mode says: ok (200), fail-once (500 once, then ok),
# fail (500).
cat >"$TEST_TMP/receiver.py" <<'PY'
import http.server, json, os, sys, time
posts, mode_file = sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        mode = open(mode_file).read().strip() if os.path.exists(mode_file) else "ok"
        status = 200
        if mode == "fail":
            status = 500
        elif mode == "fail-once":
            status = 500
            open(mode_file, "w").write("ok\n")
        name = os.path.join(posts, "%d-%d" % (time.time_ns(), status))
        with open(name + ".json", "wb") as f:
            f.write(body)
        with open(name + ".hdr", "w") as f:
            f.write("%s %s\n%s" % (self.command, self.path, self.headers))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
echo ok >"$TEST_TMP/wh-mode"
bg receiver python3 "$TEST_TMP/receiver.py" "$WH_PORT" "$POSTS" "$TEST_TMP/wh-mode"
wait_for 10 bash -c "echo >/dev/tcp/127.0.0.1/$WH_PORT" ||
	fail "webhook receiver listens on $WH_PORT"

serve_conf off "[acme]" "concurrency = 50" "[hooks]" "deploy = $TEST_TMP/hook.sh" \
	"webhook = http://127.0.0.1:$WH_PORT/certs?token=s3cret" "batch = 2s" "timeout = 3s"
n_valid() { ch domains ls --json 2>/dev/null | jq -s '[.[] | select(.state == "valid")] | length'; }
all_valid() { [ "$(n_valid)" = "$1" ]; }
# hooked: every name delivered to the hook so far, sorted, with repeats.
hooked() { cat "$RUNS"/*.file 2>/dev/null | sort; }
# posted: every name in the webhook bodies answered 200, sorted.
posted() { cat "$POSTS"/*-200.json 2>/dev/null | jq -r '.domains[].name' | sort; }
# has_names FILE: all names of FILE delivered to the hook and the webhook.
has_names() {
	[ -z "$(comm -23 <(sort -u "$1") <(hooked | sort -u))" ] &&
		[ -z "$(comm -23 <(sort -u "$1") <(posted | sort -u))" ]
}
history_has() { # NAME KIND TEXT
	ch domains show --json "$1" 2>/dev/null |
		jq -e --arg k "$2" --arg t "$3" \
			'[.history[] | select(.kind == $k and (.detail | contains($t)))] | length > 0' >/dev/null
}

check "daemon starts with a deploy hook and a webhook" serve_start

# ---- 40 at once: batched, each delivered once ----
for i in $(seq 1 40); do echo "b$i.example.com"; done >"$TEST_TMP/batch.txt"
check "add 40 domains at once" ch domains add --file "$TEST_TMP/batch.txt"
check "all 40 become valid" wait_for 120 all_valid 40
check "every one reaches the hook and the webhook" wait_for 30 has_names "$TEST_TMP/batch.txt"
sleep 3 # a straggler batch would show up now
runs=$(ls "$RUNS"/*.file | wc -l)
check "fewer hook runs ($runs) than domains (40)" test "$runs" -lt 40
check "each domain delivered exactly once" \
	cmp <(hooked) <(sort "$TEST_TMP/batch.txt")
bad=0
for f in "$RUNS"/*.file; do
	r=${f%.file}
	cmp -s "$f" "$r.stdin" || { note "$r: stdin differs from the file"; bad=$((bad + 1)); }
	[ "$(cat "$r.count")" = "$(wc -l <"$f")" ] || { note "$r: count $(cat "$r.count")"; bad=$((bad + 1)); }
	[ "$(cat "$r.live")" = "$STATE/live" ] || { note "$r: live $(cat "$r.live")"; bad=$((bad + 1)); }
done
check "every run: names on stdin = CERTHERD_DOMAINS_FILE, CERTHERD_DOMAIN_COUNT, CERTHERD_LIVE_DIR" test $bad = 0
check "the hook's stdout is logged at info" \
	grep -q 'level=info sub=deploy-hook.*stdout: deployed' "$TEST_TMP/serve.log"
posts=$(ls "$POSTS"/*.json | wc -l)
check "one webhook POST per run ($posts posts, $runs runs)" test "$posts" = "$runs"
check "webhook bodies name each domain once" cmp <(posted) <(sort "$TEST_TMP/batch.txt")
check "webhook: POST to the configured path with Content-Type application/json" \
	bash -c "grep -l '^POST /certs?token=s3cret' '$POSTS'/*.hdr | wc -l | grep -qx $posts &&
		grep -il '^Content-Type: application/json' '$POSTS'/*.hdr | wc -l | grep -qx $posts"
check "webhook bodies: event and count" \
	bash -c "cat '$POSTS'/*.json | jq -e -s 'all(.event == \"certificates-changed\" and .count == (.domains | length) and (.time | fromdateiso8601 > 0))'"
bad=0
for n in $(cat "$TEST_TMP/batch.txt"); do
	e=$(cat "$POSTS"/*.json | jq -c --arg n "$n" '.domains[] | select(.name == $n)')
	want=$(openssl x509 -noout -serial -in "$STATE/live/$n/cert.pem" | sed 's/^serial=0*//')
	na=$(date -d "$(openssl x509 -noout -enddate -in "$STATE/live/$n/cert.pem" | cut -d= -f2)" +%s)
	if [ "$(jq -r '.serial' <<<"$e" | sed 's/^0*//')" != "$want" ] ||
		[ "$(jq -r '.not_after | fromdateiso8601' <<<"$e")" != "$na" ] ||
		[ "$(jq -r .fullchain <<<"$e")" != "$STATE/live/$n/fullchain.pem" ] ||
		[ "$(jq -r .privkey <<<"$e")" != "$STATE/live/$n/privkey.pem" ]; then
		note "$n: $e (want serial $want, not_after $na)"
		bad=$((bad + 1))
	fi
done
check "webhook entries: serial, not_after and live/ paths match each certificate" test $bad = 0
check "the webhook's token is not logged" bash -c "! grep -q s3cret '$TEST_TMP/serve.log'"

# ---- a failing hook, a webhook failing once ----
echo fail >"$TEST_TMP/hook-mode"
echo fail-once >"$TEST_TMP/wh-mode"
printf '%s\n' f1.example.com f2.example.com f3.example.com >"$TEST_TMP/fail.txt"
check "add 3 domains while the hook fails" ch domains add --file "$TEST_TMP/fail.txt"
failed_all() {
	for n in $(cat "$TEST_TMP/fail.txt"); do
		history_has "$n" deploy-failed "deploy hook exited with status 3" || return 1
	done
}
check "each has 'deploy hook exited with status 3' in its history" wait_for 60 failed_all
check "the failure is logged as an error" \
	grep -q 'level=error sub=deploy .*deploy hook exited with status 3' "$TEST_TMP/serve.log"
check "the hook's stderr is logged at warn" \
	grep -q 'level=warn sub=deploy-hook .*stderr: cannot reload the web server' "$TEST_TMP/serve.log"
check "the webhook was retried after a 500 and accepted" \
	bash -c "ls '$POSTS' | grep -q -- '-500.json' && grep -q 'webhook accepted (attempt 2)' '$TEST_TMP/serve.log'"
check "webhook got them after the retry" wait_for 20 has_names "$TEST_TMP/fail.txt"

# ---- a hanging hook and a webhook failing every attempt ----
echo hang >"$TEST_TMP/hook-mode"
echo fail >"$TEST_TMP/wh-mode"
check "add h1 while the hook hangs and the webhook fails" ch domains add h1.example.com
check "h1 is valid" wait_for 60 all_valid 44
check "h1's history: hook killed at its timeout, webhook failed 4 times" \
	wait_for 60 history_has h1.example.com deploy-failed \
	"deploy hook killed after its timeout of 3 s; webhook failed after 4 attempts: HTTP status 500"
check "the hanging hook's whole process group is gone" bash -c "! pgrep -f 'sleep 606[1]'"
check "the kill is logged" grep -q 'command still running at its timeout' "$TEST_TMP/serve.log"

# ---- back to working: the daemon carried on, failed names not retried ----
echo ok >"$TEST_TMP/hook-mode"
echo ok >"$TEST_TMP/wh-mode"
n_runs=$(ls "$RUNS"/*.file | wc -l)
check "add a1, a2" ch domains add a1.example.com a2.example.com
printf '%s\n' a1.example.com a2.example.com >"$TEST_TMP/again.txt"
check "a1 and a2 are delivered to both hooks" wait_for 60 has_names "$TEST_TMP/again.txt"
check "later runs do not repeat the failed names" \
	bash -c "! cat \$(ls '$RUNS'/*.file | tail -n +$((n_runs + 1))) | grep -q '^[fh][0-9]'"

# ---- SIGTERM with a batch pending runs it first ----
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
check "restart with hooks.batch = 1m" serve_start --set hooks.batch=1m
check "add t1" ch domains add t1.example.com
check "t1 is valid" wait_for 60 all_valid 47
sleep 0.5
check "t1 is not delivered yet (batch of 1m)" bash -c "! cat '$RUNS'/*.file | grep -qx t1.example.com"
start=$(date +%s%N)
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
took=$((($(date +%s%N) - start) / 1000000))
check "SIGTERM runs the pending batch: t1 reaches the hook" bash -c "cat '$RUNS'/*.file | grep -qx t1.example.com"
check "and the webhook" bash -c "posted() { cat '$POSTS'/*-200.json | jq -r '.domains[].name'; }; posted | grep -qx t1.example.com"
check "the daemon exited within 5 s ($took ms)" test "$took" -lt 5000

# ---- kill -9 with a batch pending: delivered after the restart ----
check "restart with hooks.batch = 1m" serve_start --set hooks.batch=1m
check "add k1" ch domains add k1.example.com
check "k1 is valid" wait_for 60 all_valid 48
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
check "k1 was not delivered before the kill" bash -c "! cat '$RUNS'/*.file | grep -qx k1.example.com"
check "restart with hooks.batch = 2s" serve_start
printf '%s\n' k1.example.com >"$TEST_TMP/k.txt"
check "k1 is delivered after the restart" wait_for 30 has_names "$TEST_TMP/k.txt"
check "the journal is empty again" wait_for 10 bash -c "[ ! -s '$STATE/hooks/pending' ] && [ ! -e '$STATE/hooks/running' ]"
check "SIGTERM stops the daemon cleanly" bash -c "kill -TERM $SERVE_PID && for i in \$(seq 50); do kill -0 $SERVE_PID 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
finish
