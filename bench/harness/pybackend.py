#!/usr/bin/python3
"""pybackend.py PORT: an HTTP/1.1 keep-alive backend on 127.0.0.1:PORT answering
GET / with 1 KiB and GET /64k with 64 KiB (the bodies of backend.py), 404 otherwise.
Standard library only: what bench/run --smoke uses when nginx is not installed."""
import http.server
import sys

BODIES = {"/": b"x" * 1024, "/64k": b"y" * 65536}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the proxies expect of a backend
    # Head and body leave in one write, and without Nagle: a head-then-body pair of
    # writes would wait for the proxy's delayed ACK (40 ms) on every answer.
    disable_nagle_algorithm = True

    def do_GET(self):
        body = BODIES.get(self.path.split("?", 1)[0])
        status = "200 OK" if body is not None else "404 Not Found"
        body = body if body is not None else b""
        self.wfile.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
