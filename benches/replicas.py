#!/usr/bin/env python3
"""Replicas harness: consent-proxy as two replicas behind an nginx load balancer, on loopback.

    python3 benches/replicas.py [--quick] [--duration S] [--rounds N] [--connections C]
                                [--bin PATH] [--key-file PATH] [--no-rolling | --rolling-only]
                                [--rolling-rate R] [--rolling-seconds S] [--kill] [--no-retries]

It reuses benches/load.py (imported, not copied): the tools it installs, the release build
(CARGO_TARGET_DIR honoured; --bin PATH runs that binary instead, unbuilt), the upstream nginx
with its static page at / and its dynamic one at /dynamic (SSI: different on every request, so
the rewrite memo never answers it), wrk with the Lua done() JSON line, taskset pinning and the
CPU accounting around every run. Its files go to target/replicas (nginx configs and logs, the
replicas' decision records and stderr, report.md, report.json). It starts:

  upstream   load.py's upstream nginx
  ref        nginx as a plain reverse proxy to the upstream (load.py's target b), as load.py
             places it
  r1, r2     two consent-proxy replicas, --workers 1 each, with one config file written to a
             temporary directory (`upstream`, `client_ip: {mode: hmac}`; --key-file PATH adds
             `key_file: PATH` under client_ip, the key the replicas share), each with an admin
             listener of its own
  lb-r1r2    nginx load balancer: an upstream block of both replicas, round robin, keep-alive
             to the replicas, proxy_next_upstream error timeout (GET is idempotent: a retry is
             safe), proxy_http_version 1.1, Connection ""; each server with fail_timeout=2s
  lb-r1      the same with replica 1 only (the one-replica figure)
  lb-r2      the same with replica 2 only: the replica alone on its core, as load.py places
             the proxy under test

CPU layout (load.py's cpu_layout(2)): the two replicas each on a CPU of their own, the last two;
the load generator, the upstream and the load balancer share the others, as load.py's
generator and upstream do. On 2 CPUs there is no other: replica 1 on cpu0 beside the
generator, the upstream and the balancer, replica 2 alone on cpu1, ref (as load.py's b) on
cpu1. So on 2 CPUs, r1 competes with the generator side for cpu0 and lb-r1r2 cannot reach
twice lb-r2: the figures say what two replicas give on this machine, not how the proxy scales.

Measurement: every target (ref, lb-r1, lb-r2, lb-r1r2) on the dynamic page without consent
(the enforcing path: Set-Cookie stripping and HTML rewriting) and with consent (Cookie:
cookie_consent=all: pass-through), each a 1 s wrk warm-up and a maximum-throughput run
(wrk -t<generator CPUs> -c<C> -d<S>s, pinned, Lua done() JSON), taking turns over --rounds
rounds (default 3, quick 1) of --duration seconds (default 5, quick 2); each figure the median
over rounds, requests and errors summed. Around every run: the generator's CPU (% of a core),
the balancer's, each replica's, the upstream's and ref's CPU (their process trees), every CPU's
busy %, and each replica's requests (consent_proxy_requests_total from its /metrics) before
and after: the split between the replicas. A sanity step first checks that every target
answers 200, rewrites without consent and not with it, and that each replica is reached.

Rolling restart (after the measurement; --rolling-only for it alone, --no-rolling to skip it),
through lb-rolling (lb-r1r2's configuration plus an access log): oha at a fixed rate
(--rolling-rate, default 1000 req/s) on the enforcing dynamic page, a fixed number of requests
(rate x --rolling-seconds, default 16, quick 14) so that none is cut off by a deadline; beside
it, --long clients (default 8) each fetching /slow one request after another: the dynamic page
sent by the upstream at 10 KiB/s (nginx limit_rate), 1 to 2 s per request, so that each replica
has requests under way when it is stopped. After 2 s, in the middle of a wall-clock second
(limit_rate meters whole seconds: the slow requests are then half-way), replica 1 gets SIGTERM;
the harness polls its /readyz, admin listener and listener until it exits (it drains: not
ready, stops accepting, requests under way finish), starts it again on the same ports and CPU,
waits until /readyz answers 200 and the balancer sends it requests again (nginx takes a failed
server back after fail_timeout), waits 1 s, then does the same to replica 2. It reports oha's
requests, 2xx, non-2xx by status and connection errors by kind; the slow requests, complete
200s and errors (a truncated body included); the timeline (seconds from oha's start); each
replica instance's requests (/metrics); from the balancer's access log, per path, the requests
nginx retried on the other replica and those under way on a replica when it was signalled and
how they ended; and the balancer's error-log lines over the run. Exit status 1 if oha or a
slow client saw any error or non-2xx answer, or if the restarts did not finish while the load
ran. Controls, to see the check fail: --kill sends SIGKILL instead of SIGTERM (the slow
requests under way are cut off); --no-retries runs the balancer with proxy_next_upstream off
(the requests nginx would have retried get 502).

Last, the client pseudonym (client_ip mode hmac) in each replica process's decision records:
every request comes from 127.0.0.1, so with --key-file they must all be the same (exit status 1
otherwise); without it each replica draws a random daily key of its own.

Prints a summary table (also target/replicas/report.md), then one JSON line with the figures
(also report.json). Everything listens on 127.0.0.1 and stops by itself; every process it
started is stopped on exit, error, Ctrl-C or SIGTERM. --quick takes about 40 s, the
default about 3 minutes, build excepted.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (benches/load.py)

# load.py's functions write their files under load.WORK, read when they are called: point it
# at a directory of our own so that load.py's report is left alone.
load.WORK = load.ROOT / "target" / "replicas"
WORK = load.WORK

PAGES = [  # key, path, headers, whether the proxy rewrites it
    ("enforcing", "/dynamic", [], True),
    ("consent", "/dynamic", [f"Cookie: {load.CONSENT_ALL}"], False),
]
SATURATED = load.GENERATOR_SATURATED
IDLE = load.TARGET_IDLE


def log(msg):
    print(f"replicas: {msg}", file=sys.stderr, flush=True)


def layout():
    """(ncpu, per-replica CPUs, generator/upstream/balancer CPUs, ref's CPUs)."""
    ncpu, proxy_cpus, side_cpus = load.cpu_layout(2)
    if len(proxy_cpus) >= 2:
        replica_cpus = [[proxy_cpus[0]], [proxy_cpus[1]]]
    elif ncpu >= 2:  # 2 CPUs: each replica on its own core, replica 1 beside the generator
        replica_cpus = [[0], [1]]
    else:
        replica_cpus = [[], []]
    _, ref_cpus, _ = load.cpu_layout(1)  # load.py's b: on the last CPU
    return ncpu, replica_cpus, side_cpus, ref_cpus


def lb_block(name, port, replica_ports, retries=True, access_log=None):
    """A balancer over `replica_ports`; `access_log`: a file for one line per request with the
    replicas tried ($upstream_addr: "A, B" when the request was retried on B) and their
    answers ($upstream_status)."""
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;"
                        for p in replica_ports)
    log_format = access = ""
    if access_log is not None:
        log_format = (f"\n    log_format {name}_log "
                      "'$msec|$status|$upstream_addr|$upstream_status|$request_time|"
                      "$request_uri';")
        access = f"\n        access_log {access_log} {name}_log;"
    return f"""{log_format}
    upstream {name} {{
{servers}
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};{access}
        location / {{
            proxy_pass http://{name};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream {"error timeout" if retries else "off"};
        }}
    }}"""


def start_lb(procs, name, port, replica_ports, cpus, retries=True, access_log=None):
    block = lb_block(name.replace("-", "_"), port, replica_ports, retries, access_log)
    proc = load.start_nginx(name, max(1, len(cpus)), cpus, block)
    procs.append(proc)
    load.wait_port(port, proc, f"nginx balancer {name}")
    return proc


def write_config(tmp, upstream_port, key_file):
    text = (f"upstream: http://127.0.0.1:{upstream_port}\n"
            "client_ip:\n"
            "  mode: hmac\n")
    # --key-file: the secret the replicas share, so that both give one client address the same
    # pseudonym (client_ip.key_file; without it each replica draws a random daily key).
    if key_file:
        text += f"  key_file: {Path(key_file).resolve()}\n"
    path = Path(tmp) / "replica.yaml"
    path.write_text(text)
    return path


class Replica:
    """One consent-proxy replica: its ports, CPUs and config, and its current process."""

    def __init__(self, n, cpus, config, upstream_port):
        self.n, self.cpus, self.config, self.up = n, cpus, config, upstream_port
        self.port, self.admin = load.free_port(), load.free_port()
        self.proc, self.generation = None, 0

    def start(self, procs):
        self.generation += 1
        name = f"r{self.n}" + ("" if self.generation == 1 else f"-{self.generation}")
        try:
            self.proc = load.start_consent_proxy(
                procs, name, self.port, self.admin, self.up, self.cpus, 1,
                ["--config", str(self.config)])
            load.wait_port(self.admin, self.proc, f"replica {self.n}'s admin listener")
        except SystemExit:
            err = WORK / f"consent-proxy-{name}.log"
            if err.exists():
                log(f"replica {self.n}'s stderr:\n{err.read_text()[-2000:]}")
            raise
        return self.proc

    def requests(self):
        """Requests answered so far by the current process (all statuses), or None."""
        counts = load.requests_by_status(self.admin)
        return None if counts is None else sum(counts.values())


def run_target(t, seconds, conns, gen_cpus, watch, replicas):
    """Warm-up, then a maximum-throughput run with wrk; the figures of that run."""
    load.wrk(t, 1, conns, gen_cpus)  # warm-up
    before = [r.requests() for r in replicas]
    res = load.wrk(t, seconds, conns, gen_cpus, watch)
    after = [r.requests() for r in replicas]
    busy = res.pop("cpu_busy_pct")
    for c, v in sorted(busy.items()):
        res[f"cpu{c}_busy_pct"] = v
    ours = res["generator_cpu_pct"] + sum(res[f"{k}_cpu_pct"] for k in watch)
    res["other_cpu_pct"] = round(max(0.0, sum(busy.values()) - ours), 1)
    for r, b, a in zip(replicas, before, after):
        res[f"r{r.n}_requests"] = None if a is None or b is None else a - b
    res.pop("error_kinds")
    # load.py's rule, where it means something: the generator's CPUs saturated while the CPUs
    # that are the target's alone had idle time.
    own = [c for c in t["cpus"] if c not in gen_cpus]
    gen_busy = statistics.mean(busy[c] for c in gen_cpus) if gen_cpus else 0.0
    own_busy = statistics.mean(busy[c] for c in own) if own else None
    res["generator_side_saturated"] = (own_busy is not None and gen_busy >= SATURATED
                                       and own_busy < IDLE)
    return res


def combine(runs):
    out = load.combine(runs)
    for k in runs[0]:
        if k.endswith("_requests"):
            out[k] = sum(r[k] for r in runs if r[k] is not None)
        elif k == "generator_side_saturated":
            out[k] = sum(bool(r[k]) for r in runs)
    return out


def measure(a, seconds, rounds, procs, replicas, ports, up, ref, gen_cpus, ref_cpus):
    lbs = {
        "lb-r1": start_lb(procs, "lb-r1", ports["lb-r1"], [replicas[0].port], gen_cpus),
        "lb-r2": start_lb(procs, "lb-r2", ports["lb-r2"], [replicas[1].port], gen_cpus),
        "lb-r1r2": start_lb(procs, "lb-r1r2", ports["lb-r1r2"],
                            [r.port for r in replicas], gen_cpus),
    }
    r1c, r2c = replicas[0].cpus, replicas[1].cpus
    base = [  # key, name, process tree measured as "lb" (None: ref is the proxy), CPUs
        ("ref", "nginx proxy_pass to the upstream (load.py's b)", None, ref_cpus),
        ("lb-r1", "balancer -> replica 1", lbs["lb-r1"], gen_cpus + r1c),
        ("lb-r2", "balancer -> replica 2", lbs["lb-r2"], gen_cpus + r2c),
        ("lb-r1r2", "balancer -> replicas 1 and 2", lbs["lb-r1r2"], gen_cpus + r1c + r2c),
    ]
    targets = []
    for pg, path, headers, rewrites in PAGES:
        for key, name, lb, cpus in base:
            targets.append({
                "key": f"{key}/{pg}", "target": key, "page_kind": pg,
                "name": f"{name}, dynamic page, {'no consent' if rewrites else 'consent'}",
                "page": "dynamic", "kind": "proxy", "url": f"http://127.0.0.1:{ports[key]}{path}",
                "headers": headers, "rewrites": rewrites and key != "ref", "lb": lb,
                "cpus": sorted(set(cpus))})
    load.sanity(targets)
    # Both replicas reached through lb-r1r2 (round robin: a few requests reach each).
    before = [r.requests() for r in replicas]
    both = next(t for t in targets if t["key"] == "lb-r1r2/enforcing")
    for _ in range(6):
        load.fetch(both)
    reached = [r.requests() - b for r, b in zip(replicas, before)]
    if not all(reached):
        sys.exit(f"replicas: lb-r1r2 did not reach both replicas: {reached} requests")
    log(f"sanity: every target answers 200, rewrites only without consent; 6 requests through "
        f"lb-r1r2 reached the replicas {reached[0]} + {reached[1]}")

    runs = {t["key"]: [] for t in targets}
    for n in range(rounds):
        for t in targets:
            log(f"round {n + 1}/{rounds}: {t['key']}: {t['name']}: {seconds} s")
            watch = {"lb": [(t["lb"] or ref).pid], "r1": [replicas[0].proc.pid],
                     "r2": [replicas[1].proc.pid], "upstream": [up.pid]}
            if t["lb"] is None:
                watch.pop("lb")
                watch["ref"] = [ref.pid]
            res = run_target(t, seconds, a.connections, gen_cpus, watch, replicas)
            res.setdefault("lb_cpu_pct", None)
            res.setdefault("ref_cpu_pct", None)
            runs[t["key"]].append(res)
    return {t["key"]: {"name": t["name"], "target": t["target"], "page": t["page_kind"],
                       "url": t["url"], "cpus": t["cpus"], **combine(runs[t["key"]]),
                       "rounds": runs[t["key"]]} for t in targets}


def lb_errors(path, offset):
    """The balancer's error-log lines written since `offset`, grouped by what failed."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return {}
    kinds = {}
    for line in text.splitlines():
        m = re.search(r"\[(\w+)\] \d+#\d+: \*?\d* ?(.*?)(?:, client:|$)", line)
        what = m[2] if m else line
        what = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", what)
        key = f"[{m[1]}] {what}" if m else what
        kinds[key] = kinds.get(key, 0) + 1
    return kinds


def stop_and_restart(rep, procs, t0, sig, events):
    """Stops replica `rep` with `sig`, watching its /readyz and listener until it exits; starts
    it again on the same ports; waits until it is ready and the balancer sends it requests."""
    at = lambda: round(time.monotonic() - t0, 3)
    # nginx meters limit_rate by the wall clock's whole seconds, so the slow requests all end
    # just after one: signal in the middle of a second, when they are half-way.
    time.sleep((0.5 - time.time() % 1.0) % 1.0)
    served = rep.requests()
    events.append({"at": at(), "replica": rep.n, "event": f"{signal.Signals(sig).name} sent",
                   "requests_served": served})
    proc = rep.proc
    proc.send_signal(sig)
    seen = {}
    deadline = time.monotonic() + 40
    while proc.poll() is None and time.monotonic() < deadline:
        status, _, text = load.get(rep.admin, "/readyz", timeout=0.5)
        what = (None if status == 200 else f"/readyz {status}" if status
                else f"/readyz: {text.split(':')[0]} (admin listener gone)")
        if what and what not in seen:
            seen[what] = at()
            events.append({"at": seen[what], "replica": rep.n, "event": what})
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", rep.port)) != 0 and "listener" not in seen:
                seen["listener"] = at()
                events.append({"at": seen["listener"], "replica": rep.n,
                               "event": "listener refuses connections"})
        time.sleep(0.01)
    if proc.poll() is None:
        events.append({"at": at(), "replica": rep.n, "event": "did not exit in 40 s: killed"})
        proc.kill()
    proc.wait()
    events.append({"at": at(), "replica": rep.n, "event": f"exited ({proc.returncode})"})
    rep.start(procs)
    events.append({"at": at(), "replica": rep.n, "event": "started, listening"})
    deadline = time.monotonic() + 20
    while load.get(rep.admin, "/readyz", timeout=0.5)[0] != 200:
        if time.monotonic() > deadline:
            events.append({"at": at(), "replica": rep.n, "event": "not ready in 20 s"})
            return False
        time.sleep(0.01)
    events.append({"at": at(), "replica": rep.n, "event": "ready"})
    deadline = time.monotonic() + 15
    while not rep.requests():
        if time.monotonic() > deadline:
            events.append({"at": at(), "replica": rep.n, "event": "no request in 15 s"})
            return False
        time.sleep(0.02)
    events.append({"at": at(), "replica": rep.n, "event": "serving balancer traffic again"})
    return True


SLOW_RATE = "10k"  # bytes/s: the 20 KiB page in 1 to 2 s (nginx meters by the second)


def slow_location():
    """/slow on the upstream: the dynamic page sent at SLOW_RATE, for requests that are still
    in flight when a replica is stopped."""
    cookies = "\n".join(f'            add_header Set-Cookie "{c}";' for c in load.COOKIES)
    return f"""
        location = /slow {{
            default_type text/html;
            ssi on;
{cookies}
            limit_rate {SLOW_RATE};
            try_files /dynamic.html =404;
        }}"""


class LongRequests:
    """`n` clients, each fetching /slow through the balancer one request after another, each
    on a new connection: there are requests in flight on each replica whenever it is stopped."""

    def __init__(self, port, n, t0):
        self.port, self.t0 = port, t0
        self.done = threading.Event()
        self.results = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self):
        while not self.done.is_set():
            at = time.monotonic() - self.t0
            status, secs, body = load.get(self.port, "/slow", timeout=30.0)
            self.results.append({
                "start": round(at, 3), "end": round(at + secs, 3), "status": status,
                "complete": status == 200 and body.rstrip().endswith("</html>"),
                **({"error": body[:200]} if status is None else {})})
            if status is None:
                self.done.wait(0.05)  # no busy loop while the balancer is unreachable

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(timeout=40)
        return self.results


def access_summary(path, replicas, t0_wall, signals):
    """From the balancer's access log, per path: requests, by status, by the replica that
    answered last, the requests nginx retried on the other replica (when), and for each
    signal (seconds from t0, replica) the requests that replica had under way then and how
    they ended."""
    names = {f"127.0.0.1:{r.port}": f"r{r.n}" for r in replicas}
    out = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            msec, status, addrs, ustatus, secs, uri = line.split("|", 5)
            end, start = float(msec) - t0_wall, float(msec) - float(secs) - t0_wall
        except ValueError:
            continue
        tried = [names.get(x.strip(), x.strip()) for x in re.split(r"[,:] ", addrs) if x.strip()]
        s = out.setdefault(uri, {"requests": 0, "status": {}, "answered_by": {}, "retried": 0,
                                 "retried_at_s": [], "retries": {},
                                 "under_way_at_signal": [
                                     {"replica": f"r{n}", "at_s": at, "requests": 0,
                                      "status": {}} for at, n in signals]})
        for u in s["under_way_at_signal"]:
            if tried[0] == u["replica"] and start < u["at_s"] < end:
                u["requests"] += 1
                how = f"{status} from {tried[-1]}"
                u["status"][how] = u["status"].get(how, 0) + 1
        s["requests"] += 1
        s["status"][status] = s["status"].get(status, 0) + 1
        s["answered_by"][tried[-1]] = s["answered_by"].get(tried[-1], 0) + 1
        if len(tried) > 1:
            s["retried"] += 1
            key = f"{' -> '.join(tried)} ({ustatus})"
            s["retries"][key] = s["retries"].get(key, 0) + 1
            if len(s["retried_at_s"]) < 20:
                s["retried_at_s"].append(round(float(msec) - t0_wall, 3))
    return out


def rolling(a, procs, replicas, port, gen_cpus):
    """The rolling restart under a constant load; returns its report."""
    sig = signal.SIGKILL if a.kill else signal.SIGTERM
    rate, seconds = a.rolling_rate, a.rolling_seconds
    name = "lb-rolling" + ("-noretry" if a.no_retries else "")
    access = WORK / f"{name}.access.log"
    start_lb(procs, name, port, [r.port for r in replicas], gen_cpus,
             retries=not a.no_retries, access_log=access)
    url = f"http://127.0.0.1:{port}/dynamic"
    errlog = WORK / f"{name}.error.log"
    log_offset = errlog.stat().st_size if errlog.exists() else 0
    first = [r.requests() for r in replicas]  # counts before the load (the measurement's)
    n = max(1, round(rate * seconds))
    log(f"rolling restart: oha at {rate} req/s, {n} requests to /dynamic, and {a.long} clients "
        f"of /slow, through {name} (proxy_next_upstream "
        f"{'off' if a.no_retries else 'error timeout'}), {signal.Signals(sig).name}")
    out, err = WORK / "rolling-oha.json", WORK / "rolling-oha.log"
    with open(out, "wb") as o, open(err, "wb") as e:
        gen = subprocess.Popen(load.taskset(gen_cpus, [
            "oha", "--no-tui", "--output-format", "json", url, "-n", str(n), "-q", str(rate),
            "-c", "64", "-t", "30s"]), stdout=o, stderr=e)
    procs.append(gen)
    t0, t0_wall = time.monotonic(), time.time()
    long = LongRequests(port, a.long, t0).start()
    events = [{"at": 0.0, "event": "oha started"}]
    ok = True
    time.sleep(2.0)
    for rep in replicas:
        ok = stop_and_restart(rep, procs, t0, sig, events) and ok
        time.sleep(1.0)
    events.append({"at": round(time.monotonic() - t0, 3), "event": "restarts done"})
    finished_before = gen.poll() is not None
    slow = long.stop()
    try:
        gen.wait(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        gen.kill()
        gen.wait()
    events.append({"at": round(time.monotonic() - t0, 3), "event": f"oha done ({gen.returncode})"})
    if gen.returncode != 0:
        sys.exit(f"replicas: oha failed ({gen.returncode}): {err.read_text()[-2000:]}")
    result = json.loads(out.read_text())
    codes = {str(k): v for k, v in result.get("statusCodeDistribution", {}).items()}
    conn_errors = result.get("errorDistribution", {})
    ok2xx = sum(v for k, v in codes.items() if k.startswith("2"))
    non2xx = {k: v for k, v in codes.items() if not k.startswith("2")}
    # Requests each instance answered: the first instances up to their stop (the measurement's
    # requests taken off), the restarted ones since their start.
    sent = [e for e in events if str(e.get("event", "")).endswith(" sent")]
    per_instance = {}
    for rep, f, e in zip(replicas, first, sent):
        if f is not None and e.get("requests_served") is not None:
            per_instance[f"r{rep.n} before its restart (up to the signal)"] = \
                e["requests_served"] - f
        per_instance[f"r{rep.n} restarted"] = rep.requests()
    signals = [e["at"] for e in sent]
    slow_errors = {}
    for r in slow:
        if r["status"] is None:
            kind = r["error"].split(":")[0]
        elif r["status"] != 200:
            kind = f"status {r['status']}"
        elif not r["complete"]:
            kind = "incomplete body"
        else:
            continue
        slow_errors[kind] = slow_errors.get(kind, 0) + 1
    long_report = {
        "clients": a.long, "requests": len(slow),
        "complete_200": sum(r["complete"] for r in slow),
        "errors": slow_errors,
        "in_flight_at_each_signal": [sum(r["start"] < at < r["end"] for r in slow)
                                     for at in signals],
        "p50_s": load.percentile([round(r["end"] - r["start"], 3) for r in slow], 50),
        "max_s": max((round(r["end"] - r["start"], 3) for r in slow), default=None),
    }
    errors = sum(non2xx.values()) + sum(conn_errors.values()) + sum(slow_errors.values())
    summ = load.summarize(result)
    return {
        "balancer": name, "signal": signal.Signals(sig).name,
        "proxy_next_upstream": "off" if a.no_retries else "error timeout",
        "rate": rate, "requests": n, "answered": sum(codes.values()),
        "2xx": ok2xx, "non_2xx": non2xx, "connection_errors": conn_errors,
        "long_requests": long_report,
        "errors": errors, "achieved_rps": round(result["summary"].get("requestsPerSec", 0), 1),
        "p50_ms": summ["p50_ms"], "p99_ms": summ["p99_ms"],
        "max_ms": round(1000 * (result["summary"].get("slowest") or 0), 3),
        "restarts_completed": ok, "load_ended_before_restarts_done": finished_before,
        "timeline": events, "requests_by_instance": per_instance,
        "balancer_access_log": access_summary(access, replicas, t0_wall,
                                              [(e["at"], e["replica"]) for e in sent]),
        "balancer_error_log": lb_errors(errlog, log_offset),
        "pass": errors == 0 and ok and not finished_before,
    }


def pseudonyms():
    """The client field of the first decision record of each replica process (every request
    here comes from 127.0.0.1, the balancer's address)."""
    out = {}
    for f in sorted(WORK.glob("decisions-r*.jsonl")):
        with open(f) as fh:
            line = fh.readline()
        try:
            out[f.stem.removeprefix("decisions-")] = json.loads(line).get("client")
        except ValueError:
            out[f.stem.removeprefix("decisions-")] = None
    return out


def interrupted(*_):
    raise KeyboardInterrupt


def fmt(v):
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)


def report(results, roll, meta):
    lines = []
    if results:
        cpu_keys = sorted(k for k in next(iter(results.values())) if k.endswith("_busy_pct"))
        lines += [
            f"# Replicas: {meta['cpus']} CPUs, {meta['connections']} connections, "
            f"{meta['duration_s']} s per run, median of {meta['rounds']} round(s)",
            "",
            f"Placement: replica 1 on {meta['placement']['r1']}, replica 2 on "
            f"{meta['placement']['r2']}; wrk, the upstream nginx and the balancer on "
            f"{meta['placement']['generator']}; ref (nginx proxy_pass) on "
            f"{meta['placement']['ref']}. CPU: % of one core (process trees); busy: "
            f"/proc/stat; other: CPU time of no process measured (other processes, "
            f"interrupts). Requests r1/r2: counted by each replica's /metrics.",
            "",
            "| target | page | req/s | p50 ms | p99 ms | errors | wrk CPU % | LB CPU % | "
            "r1 CPU % | r2 CPU % | upstream CPU % | ref CPU % | "
            + " | ".join(k.replace("_busy_pct", " busy %") for k in cpu_keys)
            + " | other % | requests r1 / r2 | note |",
            "|---|---|" + "---|" * (13 + len(cpu_keys)),
        ]
        for k, r in results.items():
            note = (f"generator side saturated ({r['generator_side_saturated']}/"
                    f"{meta['rounds']})" if r["generator_side_saturated"] else "")
            split = "-"
            if r["target"] != "ref":
                tot = (r["r1_requests"] or 0) + (r["r2_requests"] or 0)
                split = (f"{fmt(r['r1_requests'])} / {fmt(r['r2_requests'])}"
                         + (f" ({round(100 * r['r1_requests'] / tot)} % / "
                            f"{round(100 * r['r2_requests'] / tot)} %)" if tot else ""))
            lines.append(
                f"| {r['target']} | {r['page']} | {fmt(r['rps'])} | {r['p50_ms']} | "
                f"{r['p99_ms']} | {r['errors']} | {r['generator_cpu_pct']} | "
                f"{fmt(r.get('lb_cpu_pct'))} | {r['r1_cpu_pct']} | {r['r2_cpu_pct']} | "
                f"{r['upstream_cpu_pct']} | {fmt(r.get('ref_cpu_pct'))} | "
                + " | ".join(str(r[c]) for c in cpu_keys)
                + f" | {r['other_cpu_pct']} | {split} | {note} |")
        lines += ["", "Ratios (req/s):", ""]
        lines += [f"- {k}: {'n/a' if v is None else v}" for k, v in meta["ratios"].items()]
        noisy = [k for k, r in results.items() if r["other_cpu_pct"] > load.NOISE]
        if noisy:
            lines += ["", f"Warning: during {', '.join(noisy)} more than {load.NOISE:g} % of a "
                          f"core went to other work (other processes, interrupts): those "
                          f"figures are not the proxies' alone."]
    if roll:
        lr = roll["long_requests"]
        lines += [
            "", f"## Rolling restart: {roll['signal']}, proxy_next_upstream "
            f"{roll['proxy_next_upstream']}, oha {roll['rate']} req/s, {roll['requests']:,} "
            f"requests through {roll['balancer']}, enforcing dynamic page; "
            f"{lr['clients']} clients of a slow page", "",
            f"- oha: answered {roll['answered']:,}: 2xx {roll['2xx']:,}, non-2xx "
            f"{roll['non_2xx'] or 0}; connection errors {roll['connection_errors'] or 0}",
            f"- oha: achieved {roll['achieved_rps']} req/s; latency p50 {roll['p50_ms']} ms, "
            f"p99 {roll['p99_ms']} ms, max {roll['max_ms']} ms",
            f"- slow page (/slow, the dynamic page at {SLOW_RATE}/s): {lr['requests']} requests, "
            f"{lr['complete_200']} complete 200s (p50 {lr['p50_s']} s, max {lr['max_s']} s), "
            f"errors {lr['errors'] or 0}; in flight (on either replica) at each signal: "
            f"{', '.join(map(str, lr['in_flight_at_each_signal'])) or '-'}",
            "- requests by replica instance (/metrics): " + ", ".join(
                f"{k} {fmt(v)}" for k, v in roll["requests_by_instance"].items()),
        ]
        for uri, acc in roll["balancer_access_log"].items():
            lines.append(
                f"- balancer access log, {uri}: {acc['requests']:,} requests, status "
                f"{acc['status']}, answered by {acc['answered_by']}; retried on the other "
                f"replica: {acc['retried']}"
                + (f" ({'; '.join(f'{v} x {k}' for k, v in acc['retries'].items())}; at "
                   f"{', '.join(map(str, acc['retried_at_s']))} s)" if acc["retried"] else "")
                + "; under way on the replica signalled: " + ", ".join(
                    f"{u['replica']} at {u['at_s']} s: {u['requests']}"
                    + (f" ({', '.join(f'{v} x {k}' for k, v in u['status'].items())})"
                       if u["requests"] else "") for u in acc["under_way_at_signal"]))
        lines += [
            "- balancer error log over the run: " + ("; ".join(
                f"{v} x {k}" for k, v in roll["balancer_error_log"].items()) or "nothing"),
            "- timeline (s from oha's start):",
        ]
        lines += [f"  - {e['at']:7.3f}  " + (f"replica {e['replica']}: " if "replica" in e else "")
                  + e["event"] for e in roll["timeline"]]
        lines += ["", f"{'PASS' if roll['pass'] else 'FAIL'}: rolling restart with no error "
                      f"and no non-2xx answer ({roll['errors']} errors"
                  + ("" if roll["restarts_completed"] else "; a restart did not complete")
                  + ("; the load ended before the restarts were done"
                     if roll["load_ended_before_restarts_done"] else "") + ")"]
    ps = meta["pseudonyms"]
    same = len(set(ps.values())) == 1
    seen = ("the replicas give 127.0.0.1 "
            + ("the same pseudonym" if same else "different pseudonyms")
            + " in their decision records (" + ", ".join(f"{k} {v}" for k, v in ps.items()) + ")")
    if meta["key_file"]:
        lines += ["", f"{'PASS' if same else 'FAIL'}: with the shared key file "
                      f"{meta['key_file']}, {seen}"]
    else:
        lines += ["", f"Client pseudonyms: {seen}; without --key-file each replica draws a "
                      f"random daily key of its own."]
    lines += ["", f"Took {meta['elapsed_s']} s, build included."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 round of 2 s runs, a 14 s rolling restart: about 40 s")
    ap.add_argument("--duration", type=float,
                    help="seconds per run (default 5, quick 2; wrk takes whole seconds)")
    ap.add_argument("--rounds", type=int, help="rounds over all targets (default 3, quick 1)")
    ap.add_argument("--connections", type=int, default=64, help="connections (default 64)")
    ap.add_argument("--bin", type=Path,
                    help="this consent-proxy binary, not built (default: cargo build --release, "
                         "CARGO_TARGET_DIR honoured)")
    ap.add_argument("--key-file", type=Path,
                    help="add client_ip.key_file: PATH to the replicas' config (a shared key)")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--no-rolling", action="store_true", help="skip the rolling restart")
    only.add_argument("--rolling-only", action="store_true",
                      help="only the rolling restart (a check: exit 1 on any error)")
    ap.add_argument("--rolling-rate", type=int, default=1000,
                    help="req/s during the rolling restart (default 1000)")
    ap.add_argument("--rolling-seconds", type=float,
                    help="length of the rolling-restart load (default 16, quick 14)")
    ap.add_argument("--long", type=int, default=8,
                    help="clients of the slow page during the rolling restart (default 8)")
    ap.add_argument("--kill", action="store_true",
                    help="control: SIGKILL the replicas instead of SIGTERM")
    ap.add_argument("--no-retries", action="store_true",
                    help="control: the rolling restart's balancer with proxy_next_upstream off")
    a = ap.parse_args()
    duration = a.duration or (2.0 if a.quick else 5.0)
    seconds = max(1, round(duration))  # wrk takes whole seconds
    rounds = max(1, a.rounds or (1 if a.quick else 3))
    a.rolling_seconds = a.rolling_seconds or (14.0 if a.quick else 16.0)
    if a.key_file and not a.key_file.is_file():
        ap.error(f"no key file {a.key_file}")
    if a.bin:
        if not os.access(a.bin, os.X_OK):
            ap.error(f"no executable {a.bin}")
        load.BIN = a.bin.resolve()

    # Ctrl-C raises KeyboardInterrupt; SIGTERM likewise, so that the finally below runs.
    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    load.prepare(build=not a.bin)
    (WORK / "report.lua").write_text(load.WRK_LUA)
    ncpu, replica_cpus, gen_cpus, ref_cpus = layout()
    # This harness's own polling (the rolling restart's) runs beside the generator.
    if gen_cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, gen_cpus)
    procs, results, roll = [], None, None
    tmp = tempfile.mkdtemp(prefix="consent-proxy-replicas-")
    try:
        ports = {k: load.free_port() for k in ["up", "ref", "lb-r1", "lb-r2", "lb-r1r2", "roll"]}
        load.start_upstream(procs, ports["up"], gen_cpus, slow_location())
        up = procs[-1]
        ref = None
        if not a.rolling_only:
            ref = load.start_nginx("ref", 1, ref_cpus, f"""
    upstream site {{ server 127.0.0.1:{ports['up']}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{ports['ref']};
        location / {{
            proxy_pass http://site;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}""")
            procs.append(ref)
            load.wait_port(ports["ref"], ref, "nginx proxy_pass")
        config = write_config(tmp, ports["up"], a.key_file)
        replicas = [Replica(i + 1, replica_cpus[i], config, ports["up"]) for i in range(2)]
        for r in replicas:
            r.start(procs)
        cpu = lambda cs: ",".join(f"cpu{c}" for c in cs) or "any CPU"
        log(f"replica 1 on {cpu(replica_cpus[0])} (:{replicas[0].port}, admin "
            f":{replicas[0].admin}), replica 2 on {cpu(replica_cpus[1])} "
            f"(:{replicas[1].port}, admin :{replicas[1].admin}); generator, upstream and "
            f"balancer on {cpu(gen_cpus)}; config {config}: "
            + config.read_text().replace("\n", " "))
        if not a.rolling_only:
            results = measure(a, seconds, rounds, procs, replicas, ports, up, ref, gen_cpus,
                              ref_cpus)
        if not a.no_rolling:
            roll = rolling(a, procs, replicas, ports["roll"], gen_cpus)
    finally:
        load.stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)

    rps = lambda k: (results or {}).get(k, {}).get("rps")
    ratio = lambda x, y: round(rps(x) / rps(y), 3) if rps(x) and rps(y) else None
    ratios = {}
    for pg, *_ in PAGES:
        ratios[f"lb-r1r2/lb-r1, {pg}"] = ratio(f"lb-r1r2/{pg}", f"lb-r1/{pg}")
        ratios[f"lb-r1r2/lb-r2, {pg}"] = ratio(f"lb-r1r2/{pg}", f"lb-r2/{pg}")
        ratios[f"lb-r2/ref, {pg}"] = ratio(f"lb-r2/{pg}", f"ref/{pg}")
    cpu = lambda cs: ",".join(f"cpu{c}" for c in cs) or "any CPU"
    meta = {
        "cpus": ncpu, "connections": a.connections, "duration_s": seconds, "rounds": rounds,
        "placement": {"r1": cpu(replica_cpus[0]), "r2": cpu(replica_cpus[1]),
                      "generator": cpu(gen_cpus), "upstream": cpu(gen_cpus),
                      "balancer": cpu(gen_cpus), "ref": cpu(ref_cpus)},
        "key_file": str(a.key_file) if a.key_file else None,
        "pseudonyms": pseudonyms(),
        "ratios": ratios,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    text = report(results, roll, meta)
    figures = {**meta, "targets": {k: {kk: vv for kk, vv in v.items() if kk != "rounds"}
                                   for k, v in (results or {}).items()},
               "rolling": roll}
    (WORK / "report.md").write_text(text)
    (WORK / "report.json").write_text(json.dumps(
        {**figures, "rounds": {k: v["rounds"] for k, v in (results or {}).items()}},
        indent=2) + "\n")
    print(text)
    print(json.dumps(figures, separators=(",", ":")))
    log(f"wrote {WORK / 'report.md'} and {WORK / 'report.json'}")
    shared_key_differs = a.key_file and len(set(meta["pseudonyms"].values())) != 1
    return 1 if (roll and not roll["pass"]) or shared_key_differs else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
