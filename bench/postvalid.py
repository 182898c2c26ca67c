#!/usr/bin/python3
"""Time POST /v1/domains -> valid on a running certherd daemon.

    bench/postvalid.py SOCKET [--spacing S] [--timeout S] NAME...

For each NAME in turn: POST {"name": NAME} to the daemon's control API on
the unix socket SOCKET, then GET /v1/domains/NAME every 10 ms until its
state is "valid" (or TIMEOUT seconds, default 60, have passed, or it is
"failed"), then wait SPACING seconds (default 0.2) before the next name.
One at a time, so every figure is one domain's latency with nothing else
of ours queued. Prints one line per name: NAME MILLISECONDS STATE, where
STATE is valid, failed, timeout or an HTTP error. Timing uses the
monotonic clock and starts just before the POST is sent.

Used by bench/serve.sh. Polling every 10 ms costs the daemon a store read
per poll (about 0.1 ms here); it is the same for every name.
"""
import http.client
import json
import socket
import sys
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def request(path, method, url, body=None):
    conn = UnixHTTPConnection(path, 10)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request(method, url, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read(1 << 20)
        return r.status, data
    finally:
        conn.close()


def one(sock, name, timeout):
    t0 = time.monotonic()
    st, data = request(sock, "POST", "/v1/domains", json.dumps({"name": name}))
    if st != 200:
        return (time.monotonic() - t0) * 1000, "post-http-%d" % st
    while True:
        st, data = request(sock, "GET", "/v1/domains/" + name)
        now = time.monotonic()
        if st != 200:
            return (now - t0) * 1000, "get-http-%d" % st
        state = json.loads(data).get("state")
        if state in ("valid", "failed"):
            return (now - t0) * 1000, state
        if now - t0 > timeout:
            return (now - t0) * 1000, "timeout"
        time.sleep(0.01)


def main():
    args = sys.argv[1:]
    spacing, timeout, names, sock = 0.2, 60.0, [], None
    while args:
        a = args.pop(0)
        if a == "--spacing":
            spacing = float(args.pop(0))
        elif a == "--timeout":
            timeout = float(args.pop(0))
        elif sock is None:
            sock = a
        else:
            names.append(a)
    if not sock or not names:
        sys.exit("usage: postvalid.py SOCKET [--spacing S] [--timeout S] NAME...")
    for n in names:
        ms, state = one(sock, n, timeout)
        print("%s %.1f %s" % (n, ms, state), flush=True)
        time.sleep(spacing)


if __name__ == "__main__":
    main()
