#!/usr/bin/env python3
"""A deliberately broken ACME server for certherd's bad-input tests.

Each path answers one kind of garbage so a test can point certherd's
--directory at it: /garbage (not JSON), /array (JSON, not an object),
/big (2 MiB body), /badurl (directory whose URLs are not http(s)),
/nononce (good directory, newNonce without Replay-Nonce),
/hugeheader (100 KiB of headers), /slow (never answers in time).
Usage: fakeca.py PORT
"""
import http.server
import json
import sys
import time

PORT = int(sys.argv[1])
BASE = "http://127.0.0.1:%d" % PORT


def directory(prefix):
    return json.dumps({
        "newNonce": BASE + prefix + "/nonce",
        "newAccount": BASE + prefix + "/acct",
        "newOrder": BASE + prefix + "/order",
    }).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def send(self, code, body, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        p = self.path
        if p == "/garbage":
            self.send(200, b"<html>this is not json")
        elif p == "/array":
            self.send(200, b"[1,2,3]")
        elif p == "/big":
            self.send(200, b" " * (2 << 20))
        elif p == "/badurl":
            self.send(200, json.dumps({"newNonce": "ftp://x/n",
                                       "newAccount": "javascript:1",
                                       "newOrder": "x"}).encode())
        elif p == "/nononce":
            self.send(200, directory("/nononce"))
        elif p == "/hugeheader":
            self.send(200, b"{}", [("X-Junk-%d" % i, "j" * 1000) for i in range(100)])
        elif p == "/slow":
            time.sleep(30)
            self.send(200, b"{}")
        else:
            self.send(404, b"")

    def do_HEAD(self):
        if self.path == "/nononce/nonce":
            self.send(200, b"")
        else:
            self.send(404, b"")

    def log_message(self, fmt, *args):
        sys.stderr.write("fakeca: " + (fmt % args) + "\n")


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
