#!/usr/bin/env python3
"""A stand-in for systemd's notification socket, for t_serve_ops.sh.

    notify_sink.py SOCKET LOG API_SOCKET

Binds a unix datagram socket at SOCKET (what NOTIFY_SOCKET names) and
appends every datagram it receives to LOG as one line, the datagram's
newlines written as '|'. The first time a datagram holds READY=1 it at
once asks the daemon's control API (unix socket API_SOCKET) for
GET /v1/status and logs "API-AT-READY <status line>" (or "API-AT-READY
error ..."), which shows whether the API really answered when the daemon
said it was ready. Runs until killed.
"""
import socket
import sys


def ask_api(path):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(5)
    try:
        c.connect(path)
        c.sendall(b"GET /v1/status HTTP/1.0\r\nHost: certherd\r\n\r\n")
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        c.close()
    return data.split(b"\r\n", 1)[0].decode("ascii", "replace")


def main():
    path, log, api = sys.argv[1:4]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    ready_seen = False
    with open(log, "a", buffering=1) as f:
        f.write("LISTENING\n")
        while True:
            data = s.recv(65536).decode("utf-8", "replace")
            f.write(data.replace("\n", "|") + "\n")
            if not ready_seen and "READY=1" in data.split("\n"):
                ready_seen = True
                try:
                    f.write("API-AT-READY %s\n" % ask_api(api))
                except OSError as e:
                    f.write("API-AT-READY error %s\n" % e)


if __name__ == "__main__":
    main()
