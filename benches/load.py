#!/usr/bin/env python3
"""Load harness: consent-proxy against going direct and against nginx, on loopback.

    python3 benches/load.py [--quick] [--workers N] [--duration S] [--rate R] [--connections C]
                            [--rounds N] [--targets K,K,...] [--allow-saturated]
    python3 benches/load.py --overload [--quick] [--overload-seconds S] [--workers N]
                            [--overload-connections C] [--config FILE]

It installs what it needs if missing (Debian's nginx-light and wrk with apt-get, oha with
cargo), builds the release binary, and starts:

  upstream   nginx serving a 20 KiB HTML page with Google Analytics and Meta tags and Set-Cookie
             headers at / (static: the same bytes every time), the same page at /dynamic made
             unique per request with SSI (a CSRF-like token in a hidden input and a nonce on the
             inline scripts from $request_id, the time from $msec; same tags, same Set-Cookie
             headers), and a small JSON resource
  a          the upstream, direct: the reference (it shares a core with the load generator)
  b          nginx as a plain reverse proxy (proxy_pass, keep-alive to the upstream)
  e          nginx with sub_filter doing naive tag removal: the peer for rewriting
  c          consent-proxy with consent granted (Cookie: cookie_consent=all): pass-through
  d          consent-proxy without consent: Set-Cookie stripping and HTML rewriting, rewrite
             memo on (the static page comes from the memo after the first request; the dynamic
             one never does)
  d0         the same with the rewrite memo off (limits.rewrite_cache: 0): every page parsed

Each target is measured on the static page (keys above) and on the dynamic one (dyn-a, dyn-b,
dyn-e, dyn-c, dyn-d, dyn-d0). --targets runs only some of them (the ratios that need the others
are then n/a). A sanity step first checks that each answers 200, that the dynamic page differs
between two fetches, that e, d and d0 leave no live googletagmanager <script src> (one without
type="text/plain") and that a, b and c do.

CPU layout: the proxies (each with --workers, default 1) on the last CPUs, the one under test
alone there when it is measured; the load generator and the upstream nginx share the others (on
2 cores: the proxy on cpu1, generator and upstream on cpu0). For the direct targets the upstream
is the target, on the generator's core: a reference figure, labelled so.

Each target gets, in turn:
  - a 1 s warm-up with wrk;
  - a maximum-throughput run: wrk -t<generator CPUs> -c64 -d<S>s --latency, pinned with taskset,
    whose Lua done() prints one JSON line: requests, duration, errors (connect, read, write,
    timeout, and status: answers >= 400, which wrk counts), latency p50/p99/p99.9;
  - a run at a fixed rate (--rate, default 5000 req/s, quick 2000) with oha -q R
    --latency-correction (coordinated omission corrected): the honest latency figure,
    p50/p99/p99.9; non-2xx answers count as errors; a target that could not hold the rate is
    marked.
Around every run the harness reads the generator's CPU time (its rusage once reaped), the CPU
time of the target's process tree (consent-proxy; nginx's master and workers) and of the
upstream's, and how busy each CPU was (/proc/stat). The generator's CPU is reported in % of one
core, each side's cores in % busy, and "other": CPU time that went to neither generator, target
nor upstream (other processes, interrupts), warned about above 15 % of a core. A maximum of a
proxy target is REFUSED when the generator's CPUs were >= 95 % busy while the target's were
< 90 %: the proxy had idle time, so the figure is the generator side's, not the proxy's. A
refused figure is printed as "refused: generator side saturated", left out of the ratios, and
the harness exits with status 3 at the end (unless --allow-saturated).

The targets take turns, round after round (--rounds, default 3, quick 1; runs of --duration
seconds, default 5, quick 2; wrk takes whole seconds), and each figure is the median over the
rounds (errors summed; a maximum is refused if it was in any round), so that a slow moment of
the machine does not land on one target only. Last, wrk at 256 connections against d on the
dynamic page, then consent-proxy's peak RSS (VmHWM). --quick takes about 1.5 minutes, the
default about 7, build excepted.

The report goes to target/load/report.md and report.json: one row per target (max req/s, p50
and p99 at the max, generator CPU %, generator-core and target-core busy %, other %, valid,
reference or refused, fixed-rate p50/p99/p99.9, oha's CPU %, errors), then the ratios the
project tracks: c/b throughput and c/b p99 at the fixed rate (static page; pass-through against
nginx proxy_pass), dyn-d/dyn-c and dyn-d/dyn-e throughput (enforcing on the dynamic page against
pass-through and against nginx sub_filter; memo on or off is the same there), d/d0 throughput
(static page, memo on against off), and the RSS at 256 connections. Everything listens on
127.0.0.1 and stops by itself.

--overload drives target c (pass-through, pinned as above, admin listener on a free port)
beyond its capacity instead. It measures c's maximum throughput (--duration at --connections),
then runs oha for --overload-seconds (default 10, quick 5) at a fixed rate of 3x that maximum
over --overload-connections (default 2048: more requests in flight than the proxy's default
limits.max_requests of 1024); oha waits for the requests under way at the end (-w, each
bounded by 30 s) rather than cutting them off. Meanwhile the harness, pinned beside oha and the
upstream, polls /healthz and /readyz every 50 ms, sends a canary GET to the proxy every 75 ms
(each on a new connection, from a pool of threads, so that a slow answer delays no later one),
samples the proxy's VmRSS and oha's CPU time (/proc) every 100 ms and the in-flight gauge and
the proxy's connections every 500 ms. Afterwards it reads the 200 and 503 counts from /metrics,
runs the maximum-throughput run again (recovery) and checks that /healthz and a request are
answered. It appends its figures and one PASS/FAIL line per target to target/load/report.md,
writes target/load/overload.json (raw samples included) and exits 1 if a target fails:
health endpoints always 200 within 100 ms; proxy RSS peak < 256 MiB and, once the proxy has
been idle for 12 s, back within 20 MiB of its value before; served canaries' p99 < 1 s; 503s counted and no other status or error;
recovery throughput >= 0.8x before. --config FILE runs the proxy with that config (e.g.
limits: {max_requests: 1000000}, to see the targets fail without shedding). It takes about
37 s (quick: about 25 s), build excepted.
"""

import argparse
import http.client
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "load"
# Where `cargo build --release` (run in ROOT by prepare()) puts the binary: CARGO_TARGET_DIR, as
# cargo reads it, else target/.
BIN = ROOT / (os.environ.get("CARGO_TARGET_DIR") or "target") / "release" / "consent-proxy"


def log(msg):
    print(f"load: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tools():
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    apt = {}
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        apt["nginx-light"] = "nginx"
    if not shutil.which("wrk"):
        apt["wrk"] = "wrk"
    if apt:
        log(f"installing {' '.join(apt)} with apt-get")
        subprocess.run(sudo + ["apt-get", "update"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y"] + list(apt), check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not shutil.which("oha"):
        log("installing oha (cargo install oha --locked)")
        subprocess.run(["cargo", "install", "oha", "--locked"], check=True)


def nginx_bin():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def page(dynamic=False):
    """A 20 KiB page with the tags sites embed. The dynamic one is the same page with nginx SSI
    directives where the static one has fixed values: a CSRF-like token in a hidden input and
    a nonce on the inline scripts ($request_id, new for every request) and the time ($msec)."""
    ssi = lambda var: f'<!--# echo var="{var}" -->'
    token = ssi("request_id") if dynamic else "0123456789abcdef0123456789abcdef"
    when = ssi("msec") if dynamic else "1700000000.000"
    head = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<meta name="generated" content="{when}">
<script async src="https://www.googletagmanager.com/gtag/js?id=G-LOAD123"></script>
<script nonce="{token}">window.dataLayer=window.dataLayer||[];function gtag(){{dataLayer.push(arguments);}}
gtag('js',new Date());gtag('config','G-LOAD123');</script>
<script nonce="{token}">!function(f,b,e,v,n,t,s){{if(f.fbq)return;n=f.fbq=function(){{n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)}};if(!f._fbq)f._fbq=n;n.push=n;
n.loaded=!0;n.version='2.0';n.queue=[];t=b.createElement(e);t.async=!0;t.src=v;
s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}}(window,document,'script',
'https://connect.facebook.net/en_US/fbevents.js');fbq('init','1');fbq('track','PageView');</script>
<noscript><img height="1" width="1" src="https://www.facebook.com/tr?id=1&ev=PageView&noscript=1"></noscript>
<link rel="stylesheet" href="/static/site.css"><script src="/static/app.js" defer></script>
</head><body><h1>Shop</h1>
<form action="/cart" method="post"><input type="hidden" name="csrf" value="{token}">
<button>Add to cart</button></form>
"""
    card = ('<div class="card"><h2>Product</h2><p>A description of the product with '
            '<a href="/item">a link</a> and <img src="/img/p.jpg" alt="p"></p></div>\n')
    body = head
    while len(body) < 20 * 1024 - 200:
        body += card
    return body + "</body></html>\n"


COOKIES = [
    "_ga=GA1.1.123.456; Path=/; Max-Age=63072000",
    "_gid=GA1.1.789; Path=/; Max-Age=86400",
    "_fbp=fb.1.1.1; Path=/; Max-Age=7776000",
    "sessionid=s3ss10n; Path=/; HttpOnly",
]


def nginx_conf(name, workers, cpus, server_block):
    cpu_mask = " ".join(format(1 << c, "b") for c in cpus[:workers]) if cpus else "auto"
    return f"""worker_processes {workers};
worker_cpu_affinity {cpu_mask};
pid {WORK}/{name}.pid;
error_log {WORK}/{name}.error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {WORK}/tmp-{name};
    proxy_temp_path {WORK}/tmp-{name};
    keepalive_requests 100000;
    {server_block}
}}
"""


def start_nginx(name, workers, cpus, server_block):
    conf = WORK / f"{name}.conf"
    (WORK / f"tmp-{name}").mkdir(exist_ok=True)
    conf.write_text(nginx_conf(name, workers, cpus, server_block))
    return subprocess.Popen([nginx_bin(), "-c", str(conf), "-p", str(WORK)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_port(port, proc, what):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"load: {what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"load: {what} did not start on port {port}")


def taskset(cpus, cmd):
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", ",".join(map(str, cpus))] + cmd
    return cmd


def oha(url, args, gen_cpus, headers=()):
    cmd = ["oha", "--no-tui", "--output-format", "json", url]
    for h in headers:
        cmd += ["-H", h]
    cmd += args
    out = subprocess.run(taskset(gen_cpus, cmd), capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"load: oha failed: {out.stderr}")
    return json.loads(out.stdout)


def summarize(r):
    s = r["summary"]
    p = r.get("latencyPercentiles", {})
    codes = r.get("statusCodeDistribution", {})
    # Requests still in flight when a timed run ends are cut off by oha: not the target's error.
    errors = sum(v for k, v in r.get("errorDistribution", {}).items()
                 if k != "aborted due to deadline")
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    bad = sum(v for k, v in codes.items() if not k.startswith("2"))
    ms = lambda v: None if v is None else round(v * 1000, 3)
    return {
        "rps": round(s.get("requestsPerSec", 0.0), 1),
        "p50_ms": ms(p.get("p50")),
        "p99_ms": ms(p.get("p99")),
        "p99.9_ms": ms(p.get("p99.9")),
        "ok": ok,
        "errors": errors + bad,
    }


def status_kib(pid, field):
    """A figure in KiB from /proc/PID/status: VmRSS (now), VmHWM (peak)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_kib(pid):
    return status_kib(pid, "VmHWM")


def prepare(clean=True, build=True):
    """Tools, the release binary, and target/load with the upstream's files. `clean` empties
    target/load first; the overload mode keeps it, so that its report is appended. `build`
    False: BIN is used as it is (benches/replicas.py --bin)."""
    ensure_tools()
    if build:
        log("building the release binary")
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT,
                       check=True)
    if clean and WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "www").mkdir(exist_ok=True)
    (WORK / "www" / "index.html").write_text(page())
    (WORK / "www" / "dynamic.html").write_text(page(dynamic=True))
    (WORK / "www" / "data.json").write_text(json.dumps({"items": list(range(20)), "ok": True}))


def cpu_layout(workers):
    """The proxies on the last CPUs, the upstream and the load generator on the first."""
    ncpu = os.cpu_count() or 1
    proxy_cpus = list(range(max(1, ncpu - workers), ncpu)) if ncpu > 1 else []
    side_cpus = [c for c in range(ncpu) if c not in proxy_cpus] or list(range(ncpu))
    return ncpu, proxy_cpus, side_cpus


def start_upstream(procs, port, cpus, extra=""):
    """nginx serving the page at / and its per-request variant at /dynamic (SSI), both with
    their Set-Cookie headers, and the JSON resource; `extra`: more of its server block
    (benches/replicas.py adds a slow location)."""
    add_cookies = "\n".join(f'        add_header Set-Cookie "{c}";' for c in COOKIES)
    procs.append(start_nginx("upstream", max(1, len(cpus)), cpus, f"""
    server {{
        listen 127.0.0.1:{port};
        root {WORK}/www;
        etag off;
        location = / {{
            default_type text/html;
{add_cookies}
            try_files /index.html =404;
        }}
        location = /dynamic {{
            default_type text/html;
            ssi on;
{add_cookies}
            try_files /dynamic.html =404;
        }}
        location = /data.json {{ default_type application/json; }}{extra}
    }}"""))
    wait_port(port, procs[-1], "the upstream nginx")


def start_consent_proxy(procs, name, port, admin_port, upstream_port, cpus, workers, extra=()):
    """consent-proxy pinned to `cpus`; its decision records go to target/load/decisions-NAME.jsonl,
    its warnings to consent-proxy-NAME.log."""
    decisions = open(WORK / f"decisions-{name}.jsonl", "wb")
    stderr = open(WORK / f"consent-proxy-{name}.log", "wb")
    proc = subprocess.Popen(
        taskset(cpus, [str(BIN), "serve", "--listen", f"127.0.0.1:{port}",
                       "--admin-listen", f"127.0.0.1:{admin_port}",
                       "--upstream", f"http://127.0.0.1:{upstream_port}",
                       "--workers", str(workers)] + list(extra)),
        stdout=decisions, stderr=stderr, env={**os.environ, "RUST_LOG": "warn"})
    decisions.close()
    stderr.close()
    procs.append(proc)
    wait_port(port, proc, "consent-proxy")
    return proc


def stop_all(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

# The overload mode.

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONSENT_ALL = "cookie_consent=all"


def get(port, path, headers=None, timeout=5.0):
    """One GET on a connection of its own: (status or None, seconds, body or what failed)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, time.perf_counter() - t0, body.decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        return None, time.perf_counter() - t0, f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_times():
    """Per CPU: (busy, total) clock ticks since boot, from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f[0].startswith("cpu") and f[0] != "cpu":
            ticks = [int(x) for x in f[1:9]]
            out[int(f[0][3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out


def requests_by_status(admin_port):
    """consent_proxy_requests_total by status, from the admin port's /metrics (summed over any
    other label, such as site)."""
    status, _, text = get(admin_port, "/metrics")
    if status != 200:
        return None
    counts = {}
    for m in re.finditer(r'^consent_proxy_requests_total\{([^}]*)\} (\S+)$', text, re.M):
        code = re.search(r'(?:^|,)status="(\d+)"', m[1])
        if code:
            counts[code[1]] = counts.get(code[1], 0) + int(float(m[2]))
    return counts


def in_flight(admin_port):
    status, _, text = get(admin_port, "/metrics", timeout=2.0)
    m = re.search(r"^consent_proxy_in_flight_requests (\S+)$", text, re.M) if status == 200 else None
    return {"in_flight": int(float(m[1])) if m else None}


def established(local_port, remote_port):
    """Established TCP connections over IPv4 (everything here is on 127.0.0.1), in one read of
    /proc/net/tcp: (those whose local port is local_port, those whose remote port is
    remote_port)."""
    local, remote = f":{local_port:04X}", f":{remote_port:04X}"
    n_local = n_remote = 0
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None, None
    for row in rows:
        f = row.split(None, 4)
        if f[3] == "01":
            n_local += f[1].endswith(local)
            n_remote += f[2].endswith(remote)
    return n_local, n_remote


def connections(ports):
    clients, upstream = established(ports["p"], ports["up"])
    return {"client_conns": clients, "upstream_conns": upstream}


def percentile(values, q):
    """Nearest rank."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q / 100 * len(v)) - 1))]


class Probe:
    """Calls `fn` every `interval` seconds on a pool of threads, so that a slow answer delays no
    later call (no coordinated omission); keeps what each call returned (a dict), with `at`,
    the seconds since start(). Every call must be bounded by a timeout."""

    def __init__(self, interval, fn, threads=256):
        self.interval, self.fn = interval, fn
        self.pool = ThreadPoolExecutor(threads)
        self.calls = []
        self.done = threading.Event()
        self.runner = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.runner.start()
        return self

    def _run(self):
        t0, n = time.perf_counter(), 0
        while not self.done.is_set():
            at = round(time.perf_counter() - t0, 3)
            self.calls.append(self.pool.submit(lambda at=at: {"at": at, **self.fn()}))
            n += 1
            self.done.wait(max(0.0, t0 + n * self.interval - time.perf_counter()))

    def stop(self):
        """Stops calling, waits for the calls under way."""
        self.done.set()
        self.runner.join()
        self.pool.shutdown(wait=True)
        return [c.result() for c in self.calls]


def timed_get(port, path, headers=None, timeout=5.0):
    status, secs, text = get(port, path, headers, timeout)
    return {"status": status, "ms": round(secs * 1000, 3),
            **({"error": text} if status is None else {})}


def latency_figures(samples):
    ms = [s["ms"] for s in samples]
    return {"n": len(samples), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms, default=None),
            "non_200": [s for s in samples if s["status"] != 200]}


def count_in_file(path, needle):
    n, tail = 0, b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            buf = tail + chunk
            n += buf.count(needle)
            # Keep a partial needle for the next chunk, but never a whole one.
            tail = buf[-(len(needle) - 1):] if len(needle) > 1 else b""
    return n


def overload(a, duration, warmup):
    """Target c beyond its capacity; returns the exit status, or why it could not run."""
    seconds = a.overload_seconds or (5.0 if a.quick else 10.0)
    conns = max(1, a.overload_connections)
    if a.config and not a.config.is_file():
        return f"load: no config file {a.config}"
    started = time.monotonic()
    prepare(clean=False)
    workers = max(1, a.workers)
    ncpu, proxy_cpus, side_cpus = cpu_layout(workers)
    # The probes below are load too: they run beside oha and the upstream, not on the proxy's CPUs.
    if side_cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, side_cpus)
    ports = {k: free_port() for k in ["up", "p", "admin"]}
    url = f"http://127.0.0.1:{ports['p']}/"
    cookie = [f"Cookie: {CONSENT_ALL}"]
    c = ["-c", str(a.connections)]
    procs = []
    try:
        start_upstream(procs, ports["up"], side_cpus)
        extra = ["--config", str(a.config.resolve())] if a.config else []
        cp = start_consent_proxy(procs, "overload", ports["p"], ports["admin"], ports["up"],
                                 proxy_cpus, workers, extra)
        wait_port(ports["admin"], cp, "the admin listener")
        if summarize(oha(url, ["-n", "1"], side_cpus, cookie))["ok"] != 1:
            return "load: target c does not answer 200"

        log(f"maximum throughput: {duration:g} s at {a.connections} connections")
        oha(url, ["-z", warmup] + c, side_cpus, cookie)
        before = summarize(oha(url, ["-z", f"{duration}s"] + c, side_cpus, cookie))
        offered = max(1, round(3 * before["rps"]))

        log(f"overload: {seconds:g} s at {offered} req/s (3x {before['rps']}) "
            f"over {conns} connections")
        rss_before = status_kib(cp.pid, "VmRSS")
        counts_before = requests_by_status(ports["admin"])
        oha_out, oha_err = WORK / "overload-oha.json", WORK / "overload-oha.log"
        usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus_before, proxy_cpu_before = cpu_times(), cpu_seconds(cp.pid)
        harness_before = resource.getrusage(resource.RUSAGE_SELF)
        with open(oha_out, "wb") as out, open(oha_err, "wb") as err:
            gen = subprocess.Popen(taskset(side_cpus, [
                "oha", "--no-tui", "--output-format", "json", url, "-H", cookie[0],
                "-z", f"{seconds}s", "-q", str(offered), "-c", str(conns),
                "-w", "-t", "30s"]),
                stdout=out, stderr=err)
        procs.append(gen)  # stopped with the rest if the harness is interrupted
        t0 = time.monotonic()
        probes = {
            "healthz": Probe(0.05, lambda: timed_get(ports["admin"], "/healthz", timeout=2.0)),
            "readyz": Probe(0.05, lambda: timed_get(ports["admin"], "/readyz", timeout=2.0)),
            "canary": Probe(0.075, lambda: timed_get(ports["p"], "/", {"Cookie": CONSENT_ALL},
                                                      timeout=10.0)),
            "samples": Probe(0.1, lambda: {"rss_kib": status_kib(cp.pid, "VmRSS"),
                                           "oha_cpu_s": cpu_seconds(gen.pid)}),
            "in_flight": Probe(0.5, lambda: {**in_flight(ports["admin"]), **connections(ports)}),
        }
        for p in probes.values():
            p.start()
        try:
            gen.wait(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            gen.kill()
            gen.wait()
        wall = time.monotonic() - t0
        cpus_after, proxy_cpu_after = cpu_times(), cpu_seconds(cp.pid)
        got = {k: p.stop() for k, p in probes.items()}
        harness_after = resource.getrusage(resource.RUSAGE_SELF)
        usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if gen.returncode != 0:
            return f"load: oha exited with {gen.returncode}: {oha_err.read_text()[-2000:]}"
        result = json.loads(oha_out.read_text())

        rss_right_after = status_kib(cp.pid, "VmRSS")
        counts_after = requests_by_status(ports["admin"])
        upstream_right_after = connections(ports)["upstream_conns"]
        log(f"recovery: {duration:g} s at {a.connections} connections")
        after = summarize(oha(url, ["-z", f"{duration}s"] + c, side_cpus, cookie))
        time.sleep(1.0)
        rss_after = status_kib(cp.pid, "VmRSS")
        rss_hwm = status_kib(cp.pid, "VmHWM")
        upstream_after = connections(ports)["upstream_conns"]
        health_after = timed_get(ports["admin"], "/healthz", timeout=2.0)
        request_after = timed_get(ports["p"], "/", {"Cookie": CONSENT_ALL}, timeout=5.0)
        # The proxy gives memory back once a burst is over and it is quiet (looked at every
        # 10 s): idle for 12 s, then measure.
        time.sleep(12.0)
        rss_idle = status_kib(cp.pid, "VmRSS")
    finally:
        stop_all(procs)
    overloaded_records = count_in_file(WORK / "decisions-overload.jsonl", b'"error":"overloaded"')

    # What oha saw.
    codes = {str(k): v for k, v in result.get("statusCodeDistribution", {}).items()}
    oha_errors = result.get("errorDistribution", {})
    cut_off = oha_errors.get("aborted due to deadline", 0)
    other_errors = {k: v for k, v in oha_errors.items() if k != "aborted due to deadline"}
    answered = sum(codes.values())
    oha_total_s = result["summary"].get("total") or seconds
    # What the proxy counted during the overload (the canaries included).
    metric_delta = None
    if counts_before is not None and counts_after is not None:
        metric_delta = {k: v - counts_before.get(k, 0) for k, v in counts_after.items()
                        if v - counts_before.get(k, 0)}
    # The load generator's CPU: exact from its rusage once reaped, else the last /proc sample.
    cpu_proc = max((s["oha_cpu_s"] for s in got["samples"] if s["oha_cpu_s"] is not None),
                   default=None)
    cpu_rusage = (usage_after.ru_utime + usage_after.ru_stime
                  - usage_before.ru_utime - usage_before.ru_stime)
    oha_cpu = cpu_rusage if cpu_rusage > 0 else cpu_proc
    busy = {c: round(100 * (cpus_after[c][0] - cpus_before[c][0])
                     / max(1, cpus_after[c][1] - cpus_before[c][1]), 1)
            for c in cpus_after if c in cpus_before}
    proxy_cpu = (None if proxy_cpu_before is None or proxy_cpu_after is None
                 else round(proxy_cpu_after - proxy_cpu_before, 2))
    harness_cpu = round(harness_after.ru_utime + harness_after.ru_stime
                        - harness_before.ru_utime - harness_before.ru_stime, 2)
    rss_samples = [s["rss_kib"] for s in got["samples"] if s["rss_kib"] is not None]
    rss_peak = max(rss_samples + [rss_before or 0, rss_right_after or 0])
    mib = lambda kib: None if kib is None else round(kib / 1024, 1)
    canary = got["canary"]
    served = [s for s in canary if s["status"] == 200]
    shed = [s for s in canary if s["status"] == 503]
    canary_other = [s for s in canary if s["status"] not in (200, 503)]
    health = {k: latency_figures(got[k]) for k in ("healthz", "readyz")}
    peak = lambda k: max((s[k] for s in got["in_flight"] if s[k] is not None), default=None)
    in_flight_peak = peak("in_flight")
    ratio = round(after["rps"] / before["rps"], 3) if before["rps"] else None

    report = {
        "machine": {"cpus": ncpu, "proxy_cpus": proxy_cpus, "generator_cpus": side_cpus},
        "settings": {"workers": workers, "connections": a.connections, "duration_s": duration,
                     "overload_s": seconds, "overload_connections": conns,
                     "config": str(a.config) if a.config else None},
        "max_rps_before": before["rps"],
        "before": before,
        "offered_rps": offered,
        "oha": {"achieved_rps": round(answered / oha_total_s, 1),
                "requests_per_sec": round(result["summary"].get("requestsPerSec", 0.0), 1),
                "status": codes, "cut_off_at_deadline": cut_off, "errors": other_errors,
                "cpu_s": None if oha_cpu is None else round(oha_cpu, 2),
                "cpu_s_proc_samples": cpu_proc,
                "cpu_percent_of_one_core": None if oha_cpu is None
                else round(100 * oha_cpu / wall, 1),
                "wall_s": round(wall, 2)},
        "proxy_cpu_s": proxy_cpu,
        "harness_cpu_s": harness_cpu,
        "cpu_busy_percent": busy,
        "metrics_during_overload": metric_delta,
        "decision_records_overloaded": overloaded_records,
        "in_flight_peak_sampled": in_flight_peak,
        "connections": {"client_peak": peak("client_conns"),
                        "upstream_peak": peak("upstream_conns"),
                        "upstream_right_after": upstream_right_after,
                        "upstream_after": upstream_after},
        "health": {k: {kk: vv for kk, vv in v.items() if kk != "non_200"}
                   | {"non_200": v["non_200"][:20], "non_200_count": len(v["non_200"])}
                   for k, v in health.items()},
        "canary": {"sent": len(canary), "served": len(served), "shed_503": len(shed),
                   "other": canary_other[:20], "other_count": len(canary_other),
                   "served_p50_ms": percentile([s["ms"] for s in served], 50),
                   "served_p99_ms": percentile([s["ms"] for s in served], 99),
                   "served_max_ms": max((s["ms"] for s in served), default=None),
                   "shed_max_ms": max((s["ms"] for s in shed), default=None)},
        "rss_mib": {"before": mib(rss_before), "peak": mib(rss_peak),
                    "right_after": mib(rss_right_after), "after": mib(rss_after),
                    "idle": mib(rss_idle), "hwm": mib(rss_hwm)},
        "after": after,
        "recovery_ratio": ratio,
        "healthz_after": health_after,
        "request_after": request_after,
        "samples": got,
    }

    h, cn, rss = health, report["canary"], report["rss_mib"]
    health_max = max((v["max_ms"] for v in h.values() if v["max_ms"] is not None), default=None)
    other_statuses = {k: v for k, v in codes.items() if k not in ("200", "503")}
    metric_other = {k: v for k, v in (metric_delta or {}).items() if k not in ("200", "503")}
    checks = [
        ("health endpoints answered within 100 ms and always 200",
         all(v["n"] and not v["non_200"] and v["max_ms"] < 100 for v in h.values()),
         f"max {health_max} ms, non-200: {sum(len(v['non_200']) for v in h.values())}"),
        ("proxy RSS peak < 256 MiB, within 20 MiB of before once idle for 12 s",
         rss["peak"] is not None and rss["peak"] < 256 and rss["idle"] is not None
         and rss["before"] is not None and rss["idle"] - rss["before"] <= 20,
         f"before {rss['before']}, peak {rss['peak']}, after recovery {rss['after']}, "
         f"idle {rss['idle']} MiB"),
        ("served canary latency p99 < 1 s",
         cn["served"] > 0 and cn["served_p99_ms"] < 1000,
         f"p99 {cn['served_p99_ms']} ms over {cn['served']} served"),
        ("503s counted (> 0), no other errors",
         (metric_delta or {}).get("503", 0) > 0 and not other_statuses and not metric_other
         and not other_errors and not cn["other_count"] and metric_delta is not None,
         f"503: metrics {(metric_delta or {}).get('503', 0)}, oha {codes.get('503', 0)}; "
         f"other statuses: oha {other_statuses or 0}, metrics {metric_other or 0}; "
         f"oha errors {other_errors or 0}; canary errors {cn['other_count']}"),
        ("recovery throughput >= 0.8x before, /healthz and a request answered after",
         ratio is not None and ratio >= 0.8 and health_after["status"] == 200
         and request_after["status"] == 200,
         f"{after['rps']} / {before['rps']} req/s = {ratio}; /healthz "
         f"{health_after['status']}, request {request_after['status']}"),
    ]
    report["checks"] = [{"target": t, "pass": ok, "detail": d} for t, ok, d in checks]
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    (WORK / "overload.json").write_text(json.dumps(report, indent=2) + "\n")

    o = report["oha"]
    fmt = lambda d: ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) if d else "none"
    lines = [
        f"## Overload: {ncpu} CPUs, {workers} worker(s), consent granted (c), "
        f"{seconds:g} s at 3x the maximum over {conns} connections"
        + (f", config {a.config}" if a.config else ""),
        "",
        f"- maximum before: {before['rps']} req/s ({a.connections} connections, {duration:g} s)",
        f"- offered: {offered} req/s; oha achieved {o['achieved_rps']} answers/s; statuses "
        f"{fmt(codes)}; errors {fmt(other_errors)}; {cut_off} cut off at the deadline",
        f"- the proxy's counts during the overload (canaries included): {fmt(metric_delta or {})}; "
        f"decision records `overloaded` (whole run): {overloaded_records}; "
        f"requests in flight, peak sampled: {in_flight_peak}",
        f"- connections, peak sampled: {peak('client_conns')} from clients, "
        f"{peak('upstream_conns')} to the upstream ({upstream_right_after} right after, "
        f"{upstream_after} after recovery)",
        f"- /healthz: max {h['healthz']['max_ms']} ms, p99 {h['healthz']['p99_ms']} ms, "
        f"{h['healthz']['n']} polls, non-200 {len(h['healthz']['non_200'])}; "
        f"/readyz: max {h['readyz']['max_ms']} ms, p99 {h['readyz']['p99_ms']} ms, "
        f"{h['readyz']['n']} polls, non-200 {len(h['readyz']['non_200'])}",
        f"- canary: {cn['sent']} sent, {cn['served']} served (p50 {cn['served_p50_ms']} ms, "
        f"p99 {cn['served_p99_ms']} ms, max {cn['served_max_ms']} ms), {cn['shed_503']} shed "
        f"with 503 (max {cn['shed_max_ms']} ms), {cn['other_count']} other",
        f"- proxy RSS: before {rss['before']} MiB, peak {rss['peak']} MiB, right after "
        f"{rss['right_after']} MiB, after recovery {rss['after']} MiB, idle 12 s later "
        f"{rss['idle']} MiB (VmHWM {rss['hwm']} MiB)",
        f"- oha CPU: {o['cpu_s']} s in {o['wall_s']} s = {o['cpu_percent_of_one_core']} % "
        f"of one core; consent-proxy CPU: {proxy_cpu} s; this harness's probes: "
        f"{harness_cpu} s; CPUs busy: "
        + ", ".join(f"cpu{c} {v} %" for c, v in sorted(busy.items())),
        f"- after: {after['rps']} req/s, {ratio}x before; errors {after['errors']}",
        f"- mode took {report['elapsed_s']} s",
        "",
    ] + [f"{'PASS' if ok else 'FAIL'}: {t} ({d})" for t, ok, d in checks] + [""]
    text = "\n".join(lines) + "\n"
    with open(WORK / "report.md", "a") as f:
        f.write(("\n" if (WORK / "report.md").exists() and (WORK / "report.md").stat().st_size
                 else "") + text)
    print(text)
    log(f"appended to {WORK / 'report.md'}, wrote {WORK / 'overload.json'}")
    return 0 if all(ok for _, ok, _ in checks) else 1


# The comparison: maximum throughput with wrk, latency at a fixed rate with oha.

# wrk calls done() once, after the run, in an environment of its own: one JSON line on stdout.
# Durations and latencies are in microseconds; summary.errors.status counts the answers with a
# status >= 400.
WRK_LUA = """\
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p99_us":%d,"p99.9_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""

GENERATOR_SATURATED = 95.0  # % busy: the generator's CPUs had no time left...
TARGET_IDLE = 90.0  # ...while the target's were below this: the figure is the generator's
NOISE = 15.0  # % of a core spent on other work during a run: warned about in the report


def process_tree(roots):
    """The pids of `roots` and of all their descendants, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def tree_cpu(pids):
    return sum(c for c in map(cpu_seconds, pids) if c is not None)


def measured(cmd, gen_cpus, watch):
    """Runs the load generator `cmd` pinned to `gen_cpus` and measures, over the run: its own
    CPU time (rusage of the reaped process), the CPU time of each process tree in `watch`
    (name -> root pids) and how busy every CPU was (/proc/stat). Returns (stdout, stats)."""
    trees = {name: process_tree(roots) for name, roots in watch.items()}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cpus0, trees0 = cpu_times(), {k: tree_cpu(v) for k, v in trees.items()}
        t0 = time.monotonic()
        proc = subprocess.Popen(taskset(gen_cpus, cmd), stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        cpus1, trees1 = cpu_times(), {k: tree_cpu(v) for k, v in trees.items()}
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"load: {cmd[0]} failed ({proc.returncode}): {stderr[-2000:]}")
    pct = lambda secs: round(100 * secs / wall, 1)
    return stdout, {
        "wall_s": round(wall, 3),
        "generator_cpu_pct": pct(usage.ru_utime + usage.ru_stime),
        **{f"{k}_cpu_pct": pct(trees1[k] - trees0[k]) for k in trees},
        "cpu_busy_pct": {c: round(100 * (cpus1[c][0] - cpus0[c][0])
                                  / max(1, cpus1[c][1] - cpus0[c][1]), 1)
                         for c in cpus1 if c in cpus0},
    }


def sides(stats, gen_cpus, target_cpus, direct=False):
    """Mean busy % of the generator's CPUs and of the target's, and whether the figure is
    refused: the generator side saturated while the target had idle time; and how much CPU
    went to neither the generator, the target nor the upstream (% of one core)."""
    busy = stats.pop("cpu_busy_pct")
    mean = lambda cpus: round(statistics.mean(busy[c] for c in cpus), 1)
    gen, tgt = mean(gen_cpus), mean(target_cpus)
    # What the CPUs spent on anything else: other processes, and interrupts (not charged to
    # any process). For the direct targets the upstream is the target: count it once.
    ours = stats["generator_cpu_pct"] + stats.get("target_cpu_pct", 0)
    if stats.get("upstream_cpu_pct") is not None and not direct:
        ours += stats["upstream_cpu_pct"]
    return {"generator_core_busy_pct": gen, "target_core_busy_pct": tgt,
            "refused": gen >= GENERATOR_SATURATED and tgt < TARGET_IDLE,
            "other_cpu_pct": round(max(0.0, sum(busy.values()) - ours), 1),
            "cpu_busy_pct": busy}


def wrk(t, seconds, conns, gen_cpus, watch=None):
    """A maximum-throughput run of wrk against target `t`."""
    cmd = ["wrk", f"-t{max(1, len(gen_cpus))}", f"-c{conns}", f"-d{seconds}s", "--latency",
           "-s", str(WORK / "report.lua"), t["url"]]
    for h in t["headers"]:
        cmd += ["-H", h]
    out, stats = measured(cmd, gen_cpus, watch or {})
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        sys.exit(f"load: no report from wrk: {out[-2000:]}")
    r = json.loads(lines[-1])
    ms = lambda us: round(us / 1000, 3)
    return {"rps": round(r["requests"] / max(1e-9, r["duration_us"] / 1e6), 1),
            "p50_ms": ms(r["p50_us"]), "p99_ms": ms(r["p99_us"]),
            "p99.9_ms": ms(r["p99.9_us"]), "requests": r["requests"],
            "errors": sum(r["errors"].values()), "error_kinds": r["errors"], **stats}


def oha_measured(t, args, gen_cpus, watch):
    cmd = ["oha", "--no-tui", "--output-format", "json", t["url"]]
    for h in t["headers"]:
        cmd += ["-H", h]
    out, stats = measured(cmd + args, gen_cpus, watch)
    return {**summarize(json.loads(out)), **stats}


def live_gtm(body):
    """Whether the page still has a live Google Tag Manager <script src>: one whose tag is not
    neutralised with type="text/plain"."""
    return any('src="https://www.googletagmanager.com' in tag and "text/plain" not in tag
               for tag in re.findall(r"<script\b[^>]*>", body))


def fetch(t):
    port = int(t["url"].split(":")[2].split("/")[0])
    path = "/" + t["url"].split("/", 3)[3]
    headers = dict(h.split(": ", 1) for h in t["headers"])
    return get(port, path, headers)


def sanity(targets):
    """Every target answers 200, the enforcing ones rewrite, the others don't; the dynamic
    page differs from one request to the next."""
    for t in targets:
        status, _, body = fetch(t)
        if status != 200:
            sys.exit(f"load: target {t['key']} ({t['name']}) answers {status}: {body[:300]}")
        if live_gtm(body) == t["rewrites"]:
            sys.exit(f"load: target {t['key']} ({t['name']}) "
                     + ("does not rewrite" if t["rewrites"] else "rewrites") + " the page")
        if t["page"] == "dynamic" and t["kind"] == "direct":
            if fetch(t)[2] == body:
                sys.exit("load: two fetches of /dynamic are the same: SSI is not working")
            if "<!--#" in body or len(body) < 20 * 1024 - 200:
                sys.exit("load: /dynamic is not the page with its SSI directives answered")


def combine(runs):
    """Per figure, the median over rounds; errors summed; a figure is refused if any round's
    was."""
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs if r.get(k) is not None]
        if k in ("ok", "errors", "requests"):
            out[k] = sum(vals)
        elif k == "refused":
            out["refused_rounds"] = sum(vals)
            out[k] = any(vals)
        elif vals and all(isinstance(v, (int, float)) for v in vals):
            out[k] = round(statistics.median(vals), 3)
    return out


def load(a, duration, rate, rounds):
    """The comparison; returns the exit status."""
    started = time.monotonic()
    prepare()
    (WORK / "report.lua").write_text(WRK_LUA)
    workers = max(1, a.workers)
    seconds = max(1, round(duration))  # wrk takes whole seconds
    ncpu, proxy_cpus, side_cpus = cpu_layout(workers)
    gen_cpus, up_cpus = side_cpus, side_cpus

    ports = {k: free_port() for k in ["up", "b", "e", "p", "admin", "p0", "admin0"]}
    procs = []
    try:
        start_upstream(procs, ports["up"], up_cpus)
        upstream = procs[-1]
        upstream_block = f"""
    upstream site {{ server 127.0.0.1:{ports['up']}; keepalive 128; }}"""
        proxy_common = """
            proxy_pass http://site;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;"""
        proxy = start_nginx("proxy", workers, proxy_cpus, upstream_block + f"""
    server {{
        listen 127.0.0.1:{ports['b']};
        location / {{ {proxy_common} }}
    }}""")
        procs.append(proxy)
        wait_port(ports["b"], proxy, "nginx proxy_pass")
        subfilter = start_nginx("subfilter", workers, proxy_cpus, upstream_block + f"""
    server {{
        listen 127.0.0.1:{ports['e']};
        location / {{ {proxy_common}
            proxy_set_header Accept-Encoding "";
            proxy_hide_header Set-Cookie;
            sub_filter_once off;
            sub_filter '<script async src="https://www.googletagmanager.com' '<script type="text/plain" data-src="https://www.googletagmanager.com';
            sub_filter 'https://connect.facebook.net' 'about:blank#';
            sub_filter 'https://www.facebook.com/tr' 'about:blank#';
            sub_filter 'gtag(' 'void(';
            sub_filter 'fbq(' 'void(';
        }}
    }}""")
        procs.append(subfilter)
        wait_port(ports["e"], subfilter, "nginx sub_filter")
        cp = start_consent_proxy(procs, "p", ports["p"], ports["admin"], ports["up"],
                                 proxy_cpus, workers)
        (WORK / "no-memo.yaml").write_text("limits:\n  rewrite_cache: 0\n")
        cp0 = start_consent_proxy(procs, "p0", ports["p0"], ports["admin0"], ports["up"],
                                  proxy_cpus, workers,
                                  ["--config", str(WORK / "no-memo.yaml")])

        # key, name, port, headers, process under test (None: the upstream), rewrites
        base = [
            ("a", "upstream direct (reference: shares a core with the generator)", "up", [],
             None, False),
            ("b", "nginx proxy_pass", "b", [], proxy, False),
            ("e", "nginx sub_filter", "e", [], subfilter, True),
            ("c", "consent-proxy, consent granted (pass-through)", "p",
             [f"Cookie: {CONSENT_ALL}"], cp, False),
            ("d", "consent-proxy enforcing, memo on", "p", [], cp, True),
            ("d0", "consent-proxy enforcing, memo off", "p0", [], cp0, True),
        ]
        targets = []
        for pg, path, prefix in (("static", "/", ""), ("dynamic", "/dynamic", "dyn-")):
            for key, name, port, headers, proc, rewrites in base:
                targets.append({
                    "key": prefix + key, "name": f"{name}, {pg}", "page": pg,
                    "url": f"http://127.0.0.1:{ports[port]}{path}", "headers": headers,
                    "kind": "direct" if proc is None else "proxy",
                    "pids": [(proc or upstream).pid],
                    "cpus": up_cpus if proc is None else proxy_cpus, "rewrites": rewrites})
        if a.targets:
            keep = a.targets.split(",")
            unknown = set(keep) - {t["key"] for t in targets}
            if unknown:
                sys.exit(f"load: no target {', '.join(sorted(unknown))}")
            targets = [t for t in targets if t["key"] in keep]
        sanity(targets)
        log("sanity: every target answers 200, the enforcing ones rewrite, /dynamic changes")

        runs = {t["key"]: {"max": [], "fixed_rate": []} for t in targets}
        c = ["-c", str(a.connections)]
        for n in range(rounds):
            for t in targets:
                log(f"round {n + 1}/{rounds}: {t['key']}: {t['name']}: {seconds} s at most "
                    f"({a.max_generator}), then {rate} req/s (oha)")
                watch = {"target": t["pids"], "upstream": [upstream.pid]}
                wrk(t, 1, a.connections, gen_cpus)  # warm-up
                if a.max_generator == "wrk":
                    peak = wrk(t, seconds, a.connections, gen_cpus, watch)
                else:
                    peak = oha_measured(t, ["-z", f"{seconds}s"] + c, gen_cpus, watch)
                direct = t["kind"] == "direct"
                peak.update(sides(peak, gen_cpus, t["cpus"], direct))
                fixed = oha_measured(t, ["-z", f"{seconds}s", "-q", str(rate),
                                         "--latency-correction"] + c, gen_cpus, watch)
                fixed.update(sides(fixed, gen_cpus, t["cpus"], direct))
                fixed.pop("refused")  # the rule is for maximum throughput
                runs[t["key"]]["max"].append(peak)
                runs[t["key"]]["fixed_rate"].append(fixed)
                if peak["refused"]:
                    log(f"{t['key']}: refused: generator side saturated "
                        f"({peak['generator_core_busy_pct']} % busy, target "
                        f"{peak['target_core_busy_pct']} %)")
        results = {t["key"]: {"name": t["name"], "kind": t["kind"], "url": t["url"],
                              "max": combine(runs[t["key"]]["max"]),
                              "fixed_rate": combine(runs[t["key"]]["fixed_rate"]),
                              "rounds": runs[t["key"]]}
                   for t in targets}
        rss = many = None
        if any(t["key"] == "dyn-d" for t in targets):
            log("consent-proxy enforcing, dynamic page, at 256 connections")
            t = next(t for t in targets if t["key"] == "dyn-d")
            many = wrk(t, seconds, 256, gen_cpus, {"target": t["pids"]})
            many.update(sides(many, gen_cpus, t["cpus"]))
            rss = peak_rss_kib(cp.pid)
    finally:
        stop_all(procs)

    valid = lambda k: k in results and not results[k]["max"]["refused"]
    ratio = lambda x, y: None if not x or not y else round(x / y, 3)
    fig = lambda k, run, f: results[k][run].get(f) if k in results else None
    thr = lambda x, y: (ratio(fig(x, "max", "rps"), fig(y, "max", "rps"))
                        if valid(x) and valid(y) else None)
    ratios = [
        ("c/b throughput: pass-through vs nginx proxy_pass, static", thr("c", "b")),
        ("c/b p99 at the fixed rate: pass-through vs nginx proxy_pass, static",
         ratio(fig("c", "fixed_rate", "p99_ms"), fig("b", "fixed_rate", "p99_ms"))),
        ("dyn-d/dyn-c throughput: enforcing vs pass-through, dynamic", thr("dyn-d", "dyn-c")),
        ("dyn-d/dyn-e throughput: enforcing vs nginx sub_filter, dynamic",
         thr("dyn-d", "dyn-e")),
        ("d/d0 throughput: enforcing, static, memo on vs off", thr("d", "d0")),
    ]
    refused = [k for k in results if results[k]["max"]["refused"]]
    report = {
        "machine": {"cpus": ncpu, "proxy_cpus": proxy_cpus, "generator_cpus": gen_cpus,
                    "upstream_cpus": up_cpus},
        "settings": {"workers": workers, "duration_s": seconds, "rate": rate,
                     "rounds": rounds, "connections": a.connections,
                     "max_generator": a.max_generator,
                     "refusal": f"generator CPUs >= {GENERATOR_SATURATED} % busy while the "
                                f"target's < {TARGET_IDLE} %"},
        "targets": results,
        "at_256_connections": many,
        "consent_proxy_peak_rss_mib": None if rss is None else round(rss / 1024, 1),
        "ratios": dict(ratios),
        "refused": refused,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    (WORK / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    cpu = lambda cs: ",".join(f"cpu{c}" for c in cs)
    lines = [
        f"# Load: {ncpu} CPUs, {workers} worker(s) per proxy, {a.connections} connections, "
        f"{seconds} s per run, median of {rounds} round(s)",
        "",
        f"Maximum throughput: {a.max_generator} on {cpu(gen_cpus)} beside the upstream nginx "
        f"({cpu(up_cpus)}); the proxy under test alone on {cpu(proxy_cpus)}. Latency at a "
        f"fixed rate: oha at {rate} req/s, corrected for coordinated omission. A maximum is "
        f"refused when the generator's core was >= {GENERATOR_SATURATED:g} % busy while the "
        f"target's was < {TARGET_IDLE:g} % (for the direct targets the target is the "
        f"upstream, on the generator's core: a reference, never refused). gen CPU: the "
        f"generator's CPU time in % of one core; core busy: /proc/stat over the run; other: "
        f"CPU time spent on neither generator, target nor upstream (other processes, "
        f"interrupts), % of one core.",
        "",
        f"| key | target | max req/s | p50 ms | p99 ms | gen CPU % | gen core busy % | "
        f"target core busy % | other % | max | at {rate}/s: p50 ms | p99 ms | p99.9 ms | oha CPU % | "
        f"errors max/fixed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, r in results.items():
        m, f = r["max"], r["fixed_rate"]
        verdict = (f"refused: generator side saturated ({m['refused_rounds']}/{rounds})"
                   if m["refused"] else "reference" if r["kind"] == "direct" else "valid")
        short = "" if (f.get("rps") or 0) >= 0.95 * rate else \
            f" (rate not held: {f.get('rps')}/s)"
        lines.append(
            f"| {k} | {r['name']} | {m['rps']} | {m['p50_ms']} | {m['p99_ms']} | "
            f"{m['generator_cpu_pct']} | {m['generator_core_busy_pct']} | "
            f"{m['target_core_busy_pct']} | {m['other_cpu_pct']} | {verdict} | {f['p50_ms']} | {f['p99_ms']} | "
            f"{f['p99.9_ms']}{short} | {f['generator_cpu_pct']} | "
            f"{m['errors']}/{f['errors']} |")
    lines += ["", "Ratios (throughput ratios leave refused figures out):", ""]
    lines += [f"- {k}: {'n/a' if v is None else v}" for k, v in ratios]
    if many:
        lines.append(
            f"- consent-proxy peak RSS (VmHWM) after 256 connections on the enforcing dynamic "
            f"page: {report['consent_proxy_peak_rss_mib']} MiB ({many['rps']} req/s, "
            f"{many['errors']} errors)")
    noisy = [k for k, r in results.items() if r["max"]["other_cpu_pct"] > NOISE]
    if noisy:
        lines += ["", f"Warning: during the maximum-throughput runs of {', '.join(noisy)} more "
                      f"than {NOISE:g} % of a core went to other work (other processes, "
                      f"interrupts): those figures are not the proxy's alone."]
    if refused:
        lines += ["", f"Refused (generator side saturated): {', '.join(refused)}"
                  + ("" if a.allow_saturated else "; exit status 3")]
    lines += ["", f"Took {report['elapsed_s']} s, build included."]
    text = "\n".join(lines) + "\n"
    (WORK / "report.md").write_text(text)
    print(text)
    log(f"wrote {WORK / 'report.md'} and {WORK / 'report.json'}")
    return 3 if refused and not a.allow_saturated else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 round of 2 s runs at 2000 req/s: about 1 to 2 minutes, build excepted")
    ap.add_argument("--workers", type=int, default=1, help="workers for each proxy (default 1)")
    ap.add_argument("--duration", type=float,
                    help="seconds per run (default 5, quick 2; wrk takes whole seconds)")
    ap.add_argument("--rounds", type=int, help="rounds over all targets (default 3, quick 1)")
    ap.add_argument("--rate", type=int,
                    help="requests/s of the fixed-rate run (default 5000, quick 2000)")
    ap.add_argument("--connections", type=int, default=64, help="connections (default 64)")
    ap.add_argument("--allow-saturated", action="store_true",
                    help="exit 0 even when a maximum-throughput figure is refused")
    ap.add_argument("--targets", help="only these targets, comma-separated (e.g. c,dyn-d)")
    # Debugging the harness: oha as the maximum-throughput generator, as the harness had it,
    # to see the refusal rule fire on a generator that saturates its core.
    ap.add_argument("--max-generator", choices=["wrk", "oha"], default="wrk",
                    help=argparse.SUPPRESS)
    ap.add_argument("--overload", action="store_true",
                    help="the overload mode instead: target c driven beyond its capacity")
    ap.add_argument("--overload-seconds", type=float,
                    help="overload mode: seconds beyond capacity (default 10, quick 5)")
    ap.add_argument("--overload-connections", type=int, default=2048,
                    help="overload mode: connections beyond capacity (default 2048)")
    ap.add_argument("--config", type=Path,
                    help="overload mode: a consent-proxy config file for the proxy under test")
    a = ap.parse_args()
    duration = a.duration or (2.0 if a.quick else 5.0)
    rounds = max(1, a.rounds or (1 if a.quick else 3))
    warmup = "500ms" if a.quick else "1s"
    if a.overload:
        sys.exit(overload(a, duration, warmup))
    if a.config or a.overload_seconds:
        ap.error("--config and --overload-seconds go with --overload")
    rate = a.rate or (2000 if a.quick else 5000)
    sys.exit(load(a, duration, rate, rounds))


if __name__ == "__main__":
    main()
