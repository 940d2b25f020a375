#!/usr/bin/env python3
"""Load harness: consent-proxy against going direct and against nginx, on loopback.

    python3 benches/load.py [--quick] [--workers N] [--duration S] [--rate R] [--connections C]
                            [--rounds N]

It installs what it needs if missing (Debian's nginx-light with apt-get, oha with cargo), builds
the release binary, and starts:

  upstream   nginx serving a 20 KiB HTML page with Google Analytics and Meta tags and Set-Cookie
             headers, and a small JSON resource
  a          the upstream, direct
  b          nginx as a plain reverse proxy (proxy_pass, keep-alive to the upstream)
  c          consent-proxy with consent granted (Cookie: cookie_consent=all): pass-through
  d          consent-proxy without consent: Set-Cookie stripping and HTML rewriting (the page
             is the same every time, so after the first request it comes from the rewrite memo)
  d0         the same with the rewrite memo off (limits.rewrite_cache: 0): every page parsed
  e          nginx with sub_filter doing naive tag removal: the peer for rewriting

The proxies get the same number of workers (--workers, default 1) and are pinned to the last
CPUs; the upstream and the load generator share the first. Each target gets the same load from
oha: a maximum-throughput run, then a run at a fixed request rate (latency corrected for
coordinated omission), which is the honest latency figure. The targets take turns, round after
round (--rounds, default 3, quick 1), and each figure is the median over the rounds, so that a
slow moment of the machine does not land on one target only. consent-proxy's peak RSS is read
after a run at 256 connections. The report goes to target/load/report.md and report.json.
Everything listens on 127.0.0.1 and stops by itself.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "load"
BIN = ROOT / "target" / "release" / "consent-proxy"


def log(msg):
    print(f"load: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tools():
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        log("installing nginx-light")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "nginx-light"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not shutil.which("oha"):
        log("installing oha (cargo install oha --locked)")
        subprocess.run(["cargo", "install", "oha", "--locked"], check=True)


def nginx_bin():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def page():
    """A 20 KiB page with the tags sites embed."""
    head = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<script async src="https://www.googletagmanager.com/gtag/js?id=G-LOAD123"></script>
<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}
gtag('js',new Date());gtag('config','G-LOAD123');</script>
<script>!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)};if(!f._fbq)f._fbq=n;n.push=n;
n.loaded=!0;n.version='2.0';n.queue=[];t=b.createElement(e);t.async=!0;t.src=v;
s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}(window,document,'script',
'https://connect.facebook.net/en_US/fbevents.js');fbq('init','1');fbq('track','PageView');</script>
<noscript><img height="1" width="1" src="https://www.facebook.com/tr?id=1&ev=PageView&noscript=1"></noscript>
<link rel="stylesheet" href="/static/site.css"><script src="/static/app.js" defer></script>
</head><body><h1>Shop</h1>
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


def median(runs):
    """Per figure, the median over rounds; errors are summed."""
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs if r[k] is not None]
        if k in ("ok", "errors"):
            out[k] = sum(vals)
        else:
            out[k] = statistics.median(vals) if vals else None
    return out


def peak_rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="about 30 seconds in all")
    ap.add_argument("--workers", type=int, default=1, help="workers for each proxy (default 1)")
    ap.add_argument("--duration", type=float, help="seconds per run (default 5, quick 2)")
    ap.add_argument("--rounds", type=int, help="rounds over all targets (default 3, quick 1)")
    ap.add_argument("--rate", type=int, help="requests/s of the fixed-rate run (default 2000, quick 1000)")
    ap.add_argument("--connections", type=int, default=64, help="connections (default 64)")
    a = ap.parse_args()
    duration = a.duration or (2.0 if a.quick else 5.0)
    rounds = max(1, a.rounds or (1 if a.quick else 3))
    warmup = "500ms" if a.quick else "1s"
    rate = a.rate or (1000 if a.quick else 2000)

    ensure_tools()
    log("building the release binary")
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    (WORK / "www").mkdir()
    (WORK / "www" / "index.html").write_text(page())
    (WORK / "www" / "data.json").write_text(json.dumps({"items": list(range(20)), "ok": True}))

    ncpu = os.cpu_count() or 1
    workers = max(1, a.workers)
    # The proxies on the last CPUs, the upstream and the load generator on the first.
    proxy_cpus = list(range(max(1, ncpu - workers), ncpu)) if ncpu > 1 else []
    side_cpus = [c for c in range(ncpu) if c not in proxy_cpus] or list(range(ncpu))

    ports = {k: free_port() for k in ["up", "b", "e", "p", "admin", "p0", "admin0"]}
    add_cookies = "\n".join(f'        add_header Set-Cookie "{c}";' for c in COOKIES)
    procs = []
    try:
        procs.append(start_nginx("upstream", 1, side_cpus[:1], f"""
    server {{
        listen 127.0.0.1:{ports['up']};
        root {WORK}/www;
        etag off;
        location = / {{
            default_type text/html;
{add_cookies}
            try_files /index.html =404;
        }}
        location = /data.json {{ default_type application/json; }}
    }}"""))
        wait_port(ports["up"], procs[-1], "the upstream nginx")
        upstream_block = f"""
    upstream site {{ server 127.0.0.1:{ports['up']}; keepalive 128; }}"""
        proxy_common = """
            proxy_pass http://site;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;"""
        procs.append(start_nginx("proxy", workers, proxy_cpus, upstream_block + f"""
    server {{
        listen 127.0.0.1:{ports['b']};
        location / {{ {proxy_common} }}
    }}"""))
        wait_port(ports["b"], procs[-1], "nginx proxy_pass")
        procs.append(start_nginx("subfilter", workers, proxy_cpus, upstream_block + f"""
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
    }}"""))
        wait_port(ports["e"], procs[-1], "nginx sub_filter")
        def consent_proxy(port, admin, extra):
            decisions = open(WORK / f"decisions-{port}.jsonl", "wb")
            proc = subprocess.Popen(
                taskset(proxy_cpus, [str(BIN), "serve", "--listen", f"127.0.0.1:{ports[port]}",
                                     "--admin-listen", f"127.0.0.1:{ports[admin]}",
                                     "--upstream", f"http://127.0.0.1:{ports['up']}",
                                     "--workers", str(workers)] + extra),
                stdout=decisions, stderr=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": "warn"})
            procs.append(proc)
            wait_port(ports[port], proc, "consent-proxy")
            return proc

        cp = consent_proxy("p", "admin", [])
        (WORK / "no-memo.yaml").write_text("limits:\n  rewrite_cache: 0\n")
        consent_proxy("p0", "admin0", ["--config", str(WORK / "no-memo.yaml")])

        targets = [
            ("a", "upstream, direct", f"http://127.0.0.1:{ports['up']}/", []),
            ("b", "nginx proxy_pass", f"http://127.0.0.1:{ports['b']}/", []),
            ("c", "consent-proxy, consent granted", f"http://127.0.0.1:{ports['p']}/",
             ["Cookie: cookie_consent=all"]),
            ("d", "consent-proxy, no consent", f"http://127.0.0.1:{ports['p']}/", []),
            ("d0", "consent-proxy, no consent, memo off", f"http://127.0.0.1:{ports['p0']}/", []),
            ("e", "nginx sub_filter", f"http://127.0.0.1:{ports['e']}/", []),
        ]
        # Sanity: every target answers, and d and e really rewrite.
        for key, _, url, headers in targets:
            r = oha(url, ["-n", "1"], side_cpus, headers)
            if summarize(r)["ok"] != 1:
                sys.exit(f"load: target {key} does not answer 200: {r}")

        runs = {key: {"max": [], "fixed_rate": []} for key, *_ in targets}
        for n in range(rounds):
            for key, name, url, headers in targets:
                log(f"round {n + 1}/{rounds}: {key}: {name}: {duration:g} s at most, "
                    f"then {rate} req/s")
                c = ["-c", str(a.connections)]
                oha(url, ["-z", warmup] + c, side_cpus, headers)  # warm-up
                peak = oha(url, ["-z", f"{duration}s"] + c, side_cpus, headers)
                fixed = oha(url, ["-z", f"{duration}s", "-q", str(rate), "--latency-correction"]
                            + c, side_cpus, headers)
                runs[key]["max"].append(summarize(peak))
                runs[key]["fixed_rate"].append(summarize(fixed))
        results = {key: {"name": name, "max": median(runs[key]["max"]),
                         "fixed_rate": median(runs[key]["fixed_rate"]), "rounds": runs[key]}
                   for key, name, *_ in targets}
        log("consent-proxy at 256 connections")
        many = oha(targets[3][2], ["-z", f"{duration}s", "-c", "256"], side_cpus)
        rss = peak_rss_kib(cp.pid)
        results["d"]["at_256_connections"] = summarize(many)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

    report = {
        "machine": {"cpus": ncpu, "proxy_cpus": proxy_cpus, "generator_cpus": side_cpus},
        "settings": {"workers": workers, "duration_s": duration, "rate": rate, "rounds": rounds,
                     "connections": a.connections},
        "targets": results,
        "consent_proxy_peak_rss_mib": None if rss is None else round(rss / 1024, 1),
    }
    r = results
    ratio = lambda x, y: None if not y else round(x / y, 3)
    report["ratios"] = {
        "c/a throughput": ratio(r["c"]["max"]["rps"], r["a"]["max"]["rps"]),
        "c/b throughput": ratio(r["c"]["max"]["rps"], r["b"]["max"]["rps"]),
        "d/c throughput": ratio(r["d"]["max"]["rps"], r["c"]["max"]["rps"]),
        "d/e throughput": ratio(r["d"]["max"]["rps"], r["e"]["max"]["rps"]),
        "d0/c throughput": ratio(r["d0"]["max"]["rps"], r["c"]["max"]["rps"]),
        "d0/e throughput": ratio(r["d0"]["max"]["rps"], r["e"]["max"]["rps"]),
        "c/b p99 at fixed rate": ratio(r["c"]["fixed_rate"]["p99_ms"], r["b"]["fixed_rate"]["p99_ms"]),
    }
    (WORK / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Load: {ncpu} CPUs, {workers} worker(s) per proxy, {a.connections} connections, "
        f"{duration:g} s per run, fixed rate {rate} req/s, median of {rounds} round(s)",
        "",
        "| | target | max req/s | p50 ms | p99 ms | p99.9 ms | errors | at {rate}/s: p50 ms | p99 ms | p99.9 ms | errors |".replace("{rate}", str(rate)),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ["a", "b", "c", "d", "d0", "e"]:
        m, f = r[key]["max"], r[key]["fixed_rate"]
        lines.append(f"| {key} | {r[key]['name']} | {m['rps']} | {m['p50_ms']} | {m['p99_ms']} | "
                     f"{m['p99.9_ms']} | {m['errors']} | {f['p50_ms']} | {f['p99_ms']} | "
                     f"{f['p99.9_ms']} | {f['errors']} |")
    lines += ["", f"consent-proxy peak RSS (after 256 connections): "
                  f"{report['consent_proxy_peak_rss_mib']} MiB; "
                  f"at 256 connections: {r['d']['at_256_connections']['rps']} req/s, "
                  f"{r['d']['at_256_connections']['errors']} errors", ""]
    lines += [f"- {k}: {v}" for k, v in report["ratios"].items()]
    text = "\n".join(lines) + "\n"
    (WORK / "report.md").write_text(text)
    print(text)
    log(f"wrote {WORK / 'report.md'} and {WORK / 'report.json'}")


if __name__ == "__main__":
    main()
