#!/usr/bin/env python3
"""Runs h2check.py against consent-proxy, in clear (h2c) and over TLS.

Starts, all on 127.0.0.1 with free ports: a small upstream (200 text/html to any
method, reading any request body), the proxy in front of it once without and once with
TLS (certs/ of this repository), runs h2check against each, stops everything (also on
failure or Ctrl-C), prints both summaries, and exits 1 if either target had a failure.

    python3 tests/h2spec/run.py [--proxy target/debug/consent-proxy] [--timeout 1]
                                [--only h2c|tls] [ids...]
"""

from __future__ import annotations

import argparse
import http.server
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BODY = (b"<!doctype html><html><head><title>h2check</title></head>"
        b"<body><p>upstream page for the HTTP/2 conformance checks</p></body></html>\n")


class Upstream(http.server.BaseHTTPRequestHandler):
    """200 text/html to any method; reads the request body whatever its framing."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def _answer(self):
        self._read_body()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(BODY)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _answer


class UpstreamServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The proxy drops upstream connections whose client went away (a reset stream,
        # a closed connection): a broken pipe here is expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Proxy:
    def __init__(self, binary: str, upstream: str, config: str | None, workdir: str, name: str):
        self.port = free_port()
        self.stderr_path = os.path.join(workdir, f"proxy-{name}.stderr")
        cmd = [binary, "serve", "--listen", f"127.0.0.1:{self.port}",
               "--admin-listen", f"127.0.0.1:{free_port()}", "--upstream", upstream]
        if config:
            cmd += ["--config", config]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        # The decision log (one JSON line a request) is not needed here.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr_path, "wb"), env=env,
                                     cwd=workdir)

    def stderr_tail(self, n=20) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class NaiveH2:
    """A deliberately lax HTTP/2 server, for --self-test: it sends its SETTINGS, acknowledges
    SETTINGS and PING, answers every complete request header block with 200 and a short
    body (ignoring flow control), and ignores everything else. It never detects an error,
    so every case that expects one must fail against it, and the cases that only need a
    working exchange must pass."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _frame(ftype, flags, stream_id, payload=b""):
        n = len(payload)
        return bytes([n >> 16, (n >> 8) & 0xFF, n & 0xFF, ftype, flags]) + \
            stream_id.to_bytes(4, "big") + payload

    def _serve(self, conn):
        from hpack import Encoder
        encoder = Encoder()
        answered = set()
        buf = b""
        try:
            conn.settimeout(10)
            while len(buf) < 24:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[24:]  # whatever it was: a lax server does not check the preface
            conn.sendall(self._frame(4, 0, 0))
            while True:
                while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                    n = int.from_bytes(buf[:3], "big")
                    ftype, flags = buf[3], buf[4]
                    sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                    payload, buf = buf[9:9 + n], buf[9 + n:]
                    if ftype == 4 and not flags & 1:  # SETTINGS
                        conn.sendall(self._frame(4, 1, 0))
                    elif ftype == 6 and not flags & 1:  # PING
                        conn.sendall(self._frame(6, 1, 0, payload[:8].ljust(8, b"\0")))
                    elif ftype in (1, 9) and flags & 0x4 and sid % 2 and sid not in answered:
                        answered.add(sid)
                        block = encoder.encode([(":status", "200"),
                                                ("content-type", "text/html")])
                        conn.sendall(self._frame(1, 0x4, sid, block) +
                                     self._frame(0, 0x1, sid, b"<p>lax</p>"))
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
        except OSError:
            return
        finally:
            conn.close()

    def stop(self):
        self.running = False
        self.sock.close()


# Against NaiveH2 these must fail (each expects an error, or flow control) ...
SELF_TEST_MUST_FAIL = [
    "http2/3.5/2", "http2/4.2/2", "http2/4.2/3", "http2/4.3/1", "http2/5.1/2", "http2/5.1/5",
    "http2/5.1.1/1", "http2/5.4.1/1", "http2/5.5/2", "http2/6.1/1", "http2/6.5/1",
    "http2/6.5.2/1", "http2/6.9.1/1", "http2/6.9.1/2", "http2/6.9.2/2", "http2/6.10/4",
    "http2/8.1.2/1", "http2/8.1.2.3/2", "http2/8.1.2.6/1", "http2/8.2/1", "hpack/2.3.3/1",
    "hpack/5.2/3", "hpack/6.1/1", "hpack/6.3/1",
]
# ... and these must pass (they need only a working exchange).
SELF_TEST_MUST_PASS = [
    "generic/1/1", "generic/3.1/1", "generic/3.2/1", "generic/3.10/2", "generic/5/13",
    "http2/3.5/1", "http2/4.1/1", "http2/4.2/1", "http2/6.5.3/2", "http2/6.7/1", "http2/6.7/2",
    "http2/6.10/1",
]


def self_test(args) -> int:
    """Runs h2check against NaiveH2 and checks that it tells the two kinds of case apart."""
    server = NaiveH2()
    try:
        cmd = [sys.executable, os.path.join(HERE, "h2check.py"), "--host", "127.0.0.1",
               "--port", str(server.port), "--timeout", "0.2"]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=args.deadline)
    finally:
        server.stop()
    print(out.stdout, end="")
    results = {}
    for line in out.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASS", "FAIL", "SKIP"):
            results[rest.split(":")[0].split(" ")[0]] = word
    wrong = [f"{i} should FAIL, got {results.get(i)}" for i in SELF_TEST_MUST_FAIL
             if results.get(i) != "FAIL"]
    wrong += [f"{i} should PASS, got {results.get(i)}" for i in SELF_TEST_MUST_PASS
              if results.get(i) != "PASS"]
    print("== self-test against a lax server that never reports an error")
    if out.returncode == 0:
        wrong.append("h2check exited 0 although cases failed")
    for w in wrong:
        print(f"self-test: {w}")
    print("self-test: " + ("FAILED" if wrong else
                           "ok: the error cases fail and the exchange cases pass"))
    return 1 if wrong else 0


def run_target(name, args, upstream_url, workdir) -> tuple[int, str]:
    config = None
    if name == "tls":
        config = os.path.join(workdir, "tls.yaml")
        with open(config, "w", encoding="utf-8") as f:
            f.write("tls:\n  certificates:\n"
                    f"    - {{ cert: {os.path.join(REPO, 'certs', 'localhost.pem')}, "
                    f"key: {os.path.join(REPO, 'certs', 'localhost-key.pem')} }}\n")
    proxy = Proxy(args.proxy, upstream_url, config, workdir, name)
    try:
        if not wait_listening(proxy.port, proxy.proc, 20):
            msg = f"{name}: the proxy did not start listening:\n{proxy.stderr_tail()}"
            print(msg, flush=True)
            return 1, f"{name}: proxy did not start"
        print(f"== {name}: proxy on 127.0.0.1:{proxy.port} "
              f"({'TLS, ALPN h2' if name == 'tls' else 'h2c, prior knowledge'})", flush=True)
        cmd = [sys.executable, os.path.join(HERE, "h2check.py"), "--host", "127.0.0.1",
               "--port", str(proxy.port), "--timeout", str(args.timeout),
               "--exclude", args.exclude, "--budget", str(args.budget)]
        if name == "tls":
            cmd.append("--tls")
        if args.strict:
            cmd.append("--strict")
        cmd += args.ids
        lines = []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as p:
            killer = threading.Timer(args.deadline, p.kill)
            killer.start()
            try:
                for line in p.stdout:
                    print(line, end="", flush=True)
                    lines.append(line.rstrip("\n"))
                rc = p.wait()
            finally:
                killer.cancel()
        summary = lines[-1] if lines else "no output"
        if rc < 0:
            summary = f"h2check killed after {args.deadline:g}s"
            rc = 1
        if proxy.proc.poll() is not None:
            print(f"{name}: the proxy exited with {proxy.proc.returncode} during the run:\n"
                  f"{proxy.stderr_tail()}", flush=True)
            rc = rc or 1
        return rc, f"{name}: {summary}"
    finally:
        proxy.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy", default=os.path.join(REPO, "target", "debug", "consent-proxy"),
                    help="the consent-proxy binary (default: target/debug/consent-proxy)")
    ap.add_argument("--timeout", type=float, default=1.0,
                    help="h2check's wait for each expected frame, seconds (default 1)")
    ap.add_argument("--exclude", default=os.path.join(HERE, "excluded.txt"))
    ap.add_argument("--only", choices=["h2c", "tls"], help="run one target only")
    ap.add_argument("--strict", action="store_true", help="pass --strict to h2check")
    ap.add_argument("--budget", type=float, default=45,
                    help="seconds h2check may spend starting cases on one target; cases "
                         "not started by then fail (default 45)")
    ap.add_argument("--deadline", type=float, default=75,
                    help="seconds after which h2check is killed (default 75)")
    ap.add_argument("--self-test", action="store_true",
                    help="instead: check that h2check fails a lax, non-conformant server")
    ap.add_argument("ids", nargs="*", help="case ids or prefixes, passed to h2check")
    args = ap.parse_args()
    if args.self_test:
        return self_test(args)
    missing = [m for m in ("hpack", "hyperframe") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"missing {', '.join(missing)}: pip install -r tests/h2spec/requirements.txt",
              file=sys.stderr)
        return 2
    args.proxy = os.path.abspath(args.proxy)
    if not os.access(args.proxy, os.X_OK):
        print(f"no proxy binary at {args.proxy}: run `cargo build` first or pass --proxy",
              file=sys.stderr)
        return 2

    started = time.monotonic()
    upstream = UpstreamServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    upstream_url = f"http://127.0.0.1:{upstream.server_address[1]}"
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="h2check-") as workdir:
            for name in ("h2c", "tls"):
                if args.only and name != args.only:
                    continue
                results.append(run_target(name, args, upstream_url, workdir))
    finally:
        upstream.shutdown()
        upstream.server_close()
    print(f"== summary ({time.monotonic() - started:.1f}s)")
    for _, line in results:
        print(line)
    return 1 if any(rc for rc, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
