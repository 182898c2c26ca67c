#!/bin/bash
# tests/netns.sh CMD [ARG...]
# Run CMD in a fresh private network namespace with only loopback up, so the
# fixed ports of Pebble (14000, 15000, 8053, 8055) and of our HTTP-01
# responder (5002) never clash between tests or with the host. When allowed
# it is also a fresh PID namespace (with its own /proc): whatever CMD starts
# dies with it, so a crashed or timed-out test leaves no stray Pebble.
# Exit status is CMD's. Without permission for unshare (unprivileged, some
# containers) it warns and runs CMD on the host loopback instead.
# CMD sees CERTHERD_NETNS=pid+net, net or host.
set -u
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARG...]" >&2; exit 2; }

# The inner bash is the namespace's init (PID 1). It runs CMD as a child, so
# CMD keeps ordinary signal semantics (PID 1 ignores unhandled signals), and
# forwards TERM/INT/HUP to it.
inner='ip link set lo up || { echo "netns.sh: cannot bring up lo" >&2; exit 125; }
trap '\''kill -TERM "$child" 2>/dev/null'\'' TERM INT HUP
"$@" <&0 &
child=$!
rc=0
while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
exit "$rc"'

if unshare --net --pid --fork --mount-proc --kill-child -- true 2>/dev/null; then
	export CERTHERD_NETNS=pid+net
	exec unshare --net --pid --fork --mount-proc --kill-child -- bash -c "$inner" netns "$@"
elif unshare --net -- true 2>/dev/null; then
	export CERTHERD_NETNS=net
	exec unshare --net -- bash -c "$inner" netns "$@"
else
	echo "netns.sh: WARNING: unshare --net not permitted; running on the host loopback (fixed ports may clash)" >&2
	export CERTHERD_NETNS=host
	exec "$@"
fi
