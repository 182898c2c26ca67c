# shellcheck shell=bash
# A real BIND 9 (Debian's named) for DNS-01 tests, sourced after lib.sh.
#
#   named_start DIR ZONE...   start named on 127.0.0.1:53 (the test's own
#                             network namespace), authoritative for each
#                             ZONE (SOA, NS ns1.ZONE -> 127.0.0.1, apex and
#                             * A 127.0.0.1), dynamic updates allowed for
#                             TSIG key "certherd-test" (hmac-sha256), no
#                             recursion. Sets NAMED_PID, NAMED_DIR,
#                             NAMED_KEY (the key file, 0600, as tsig-keygen
#                             writes it) and NAMED_ADDR=127.0.0.1:53.
#                             Stopped on exit; its log is DIR/named.log.
#   named_txt NAME            the TXT strings at NAME, one a line, asked
#                             of named with dig (no recursion)
#
# Pebble resolves through it when started with PEBBLE_DNS_SERVER=$NAMED_ADDR.

named_start() {
	local dir=$1 z
	shift
	mkdir -p "$dir"
	chmod 700 "$dir"
	NAMED_DIR=$dir
	NAMED_ADDR=127.0.0.1:53
	NAMED_KEY=$dir/certherd-test.key
	(umask 077 && tsig-keygen -a hmac-sha256 certherd-test >"$NAMED_KEY") || return 1
	{
		cat <<EOF
options {
	directory "$dir";
	pid-file "$dir/named.pid";
	listen-on port 53 { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	allow-query { any; };
	session-keyfile "$dir/session.key";
};
include "$NAMED_KEY";
EOF
		for z in "$@"; do
			cat <<EOF
zone "$z" {
	type primary;
	file "$dir/$z.zone";
	allow-update { key certherd-test; };
};
EOF
			cat >"$dir/$z.zone" <<EOF
\$TTL 60
@	SOA	ns1.$z. hostmaster.$z. 1 60 60 600 60
@	NS	ns1.$z.
ns1	A	127.0.0.1
@	A	127.0.0.1
*	A	127.0.0.1
EOF
		done
	} >"$dir/named.conf"
	named-checkconf "$dir/named.conf" || return 1
	named -f -g -u root -c "$dir/named.conf" >"$dir/named.log" 2>&1 &
	NAMED_PID=$!
	on_exit "kill $NAMED_PID 2>/dev/null; wait $NAMED_PID 2>/dev/null"
	wait_for 20 dig +norec +time=1 +tries=1 @127.0.0.1 -p 53 "$1" SOA +short || {
		tail -n 30 "$dir/named.log"
		return 1
	}
	export NAMED_PID NAMED_DIR NAMED_KEY NAMED_ADDR
}

named_txt() {
	dig +norec +time=2 +tries=1 @127.0.0.1 -p 53 "$1" TXT +short | tr -d '"'
}
