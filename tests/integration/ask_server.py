#!/usr/bin/env python3
"""The HTTP server front mode's on_demand.ask calls, for t_front_life.sh
and t_front_ondemand.sh.

    ask_server.py PORT LOG RULE ZONE...

Listens on 127.0.0.1:PORT and answers every GET PATH?domain=NAME&...
with 204 (allowed) or 403 (denied), an empty body either way. RULE is
PATH or PATH?K=V&...: a request is allowed when its path is PATH, it
carries each K with exactly the value V (a token, say), and NAME lies
under one of the ZONEs (x.ZONE, x.y.ZONE; not ZONE itself). Everything
else is denied, so a RULE path the daemon is not pointed at denies all.
Each request is appended to LOG as one line "PATH NAME CODE" (the query,
which may hold a token, is not written). Runs until killed.
"""
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, log_path, rule = int(sys.argv[1]), sys.argv[2], sys.argv[3]
zones = sys.argv[4:]
rule_path, _, rule_query = rule.partition("?")
# each K=V of the rule, as parse_qs reads the request's query
need = {k: [v] for k, v in urllib.parse.parse_qsl(rule_query)}
log = open(log_path, "a", buffering=1)


def allowed(path, query, name):
    if path != rule_path:
        return False
    if any(query.get(k) != v for k, v in need.items()):
        return False
    return any(name.endswith("." + z) for z in zones)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        name = q.get("domain", [""])[0]
        code = 204 if allowed(u.path, q, name) else 403
        log.write(f"{u.path} {name} {code}\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass  # LOG above is the record


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
