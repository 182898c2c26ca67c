#!/usr/bin/env python3
"""A TLS 1.3 client whose Finished and two HTTP requests leave in one
write: usage tls_coalesce.py PORT NAME CAFILE.

The front reads ahead (all that the socket holds in one read), so the
second request is already inside its SSL object, not in the socket,
when the first has been relayed: it must be read from there rather than
waited for with a poll that will never fire. Exit 0 when both responses
come back before the upstream closes, 1 otherwise (with the reason)."""
import socket
import ssl
import sys
import time

port, name, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname=name)
sock = socket.create_connection(("127.0.0.1", port), timeout=10)

# handshake, holding back the client's last flight (its Finished)
while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        if out.pending:
            sock.sendall(out.read())
        data = sock.recv(65536)
        if not data:
            sys.exit("closed during the handshake")
        inc.write(data)

req = "GET / HTTP/1.1\r\nHost: %s\r\n%s\r\n"
tls.write((req % (name, "")).encode())
tls.write((req % (name, "Connection: close\r\n")).encode())
flight = out.read()  # Finished + two application data records
sock.sendall(flight)

got = b""
deadline = time.monotonic() + 10
try:
    while time.monotonic() < deadline:
        try:
            chunk = tls.read(65536)
            if not chunk:
                break  # the end of the stream
            got += chunk
            continue
        except ssl.SSLWantReadError:
            pass
        data = sock.recv(65536)
        if not data:
            break
        inc.write(data)
except ssl.SSLZeroReturnError:
    pass  # close_notify after the second response
except socket.timeout:
    sys.exit("no answer within 10 s; got %d response(s)" % got.count(b"HTTP/1.1 200"))
n = got.count(b"HTTP/1.1 200")
if n != 2:
    sys.exit("%d response(s) to two requests sent with the Finished in %d bytes" % (n, len(flight)))
print("2 responses to two requests sent with the Finished in one write of %d bytes" % len(flight))
