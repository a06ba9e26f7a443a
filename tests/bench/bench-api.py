#!/usr/bin/env python3
"""bench-api: smpgwd's REST API under wrk, beside nginx serving the same bytes.

    make bench-api                                   # 1,000 devices, wrk -t2 -c32 -d15s
    make bench-api BENCH_API_ARGS="--duration 30 --connections 64"

Starts one smp-sim process with 1,000 UDP devices and smpgwd with a
configuration that registers them ([device] sections) and polls them (the
[poll] interval, 60 s by default), waits until every device's stats are in
the cache (/metrics has a stats age for each), and creates a viewer token with
`smpgwd token create`. Then wrk, with the token in an Authorization header,
against GET /api/v1/devices?limit=1000 (all 1,000 devices in one page) and
GET /metrics. The exact bytes of one answer of each are saved to files and
served by a private nginx (its own configuration in the temporary directory,
access_log off, sendfile on, keep-alive unbounded, worker_processes 1 like the
single-threaded daemon, then auto for context), against which the same wrk
command runs. Prints requests/s, p50 and p99 of each run, smpgwd's CPU
(utime + stime of /proc/PID/stat over the run) and RSS, and the ratio
smpgwd / nginx (1 worker) of requests/s, whose goal is >= 0.5.

wrk and nginx are Debian packages: installed with apt-get when missing (as
root; without a running nginx service: policy-rc.d says no while it
installs). Not a test: prints figures for a human. Every process it starts is
stopped on exit, on SIGINT and on SIGTERM.
"""
import argparse
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from smpgw_test import Harness, log_text, sim_udp_addresses, wait_for  # noqa: E402

PACKAGES = ("wrk", "nginx")
POLICY_RC = "/usr/sbin/policy-rc.d"
ENDPOINTS = (("devices", "/api/v1/devices?limit=1000", "application/json"),
             ("metrics", "/metrics", "text/plain; version=0.0.4; charset=utf-8"))


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print(f"bench-api: {msg}", file=sys.stderr, flush=True)
    return 1


# ---- tools ----

def missing_tools():
    return [p for p in PACKAGES if not shutil.which(p, path=os.environ.get("PATH", "") +
                                                    ":/usr/sbin:/sbin")]


def install_tools():
    """apt-get install of what is missing; None when everything is there,
    else the reason it is not."""
    missing = missing_tools()
    if not missing:
        return None
    if os.geteuid() != 0:
        return (f"{', '.join(missing)} missing and not root: "
                f"run `apt-get install {' '.join(missing)}` as root, then again")
    log(f"installing {' '.join(missing)} with apt-get")
    # The nginx package starts a system-wide nginx on port 80 unless
    # policy-rc.d forbids it: forbid it for the time of the install.
    own_policy = not os.path.exists(POLICY_RC)
    if own_policy:
        with open(POLICY_RC, "w") as f:
            f.write("#!/bin/sh\n# bench-api: no service starts while it installs\nexit 101\n")
        os.chmod(POLICY_RC, 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            # Package lists may be missing or stale: once more after an update.
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            return f"`{' '.join(cmd)}` failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
    finally:
        if own_policy:
            os.unlink(POLICY_RC)
    still = missing_tools()
    return f"{', '.join(still)} still missing after apt-get" if still else None


def tool(name):
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


# ---- processes ----

def proc_stat(pid):
    """(utime + stime in seconds, VmRSS KiB, VmHWM KiB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, rss, hwm


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def cpu_of(pids):
    total = 0.0
    for p in pids:
        try:
            total += proc_stat(p)[0]
        except OSError:
            pass
    return total


def drain_pipe(stream, keep):
    """Reads a child's pipe to its end so that it never blocks on a full
    pipe; keeps the last lines for a failure message."""
    for line in iter(stream.readline, b""):
        keep.append(line.decode(errors="replace").rstrip())
        del keep[:-50]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def http_get(port, path, token):
    """One GET on a fresh connection: (status, body bytes)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# ---- nginx ----

NGINX_CONF = """\
# bench-api: a private nginx serving saved smpgwd answers as static files.
daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{
	worker_connections 1024;
}}
http {{
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	keepalive_timeout 65;
	client_body_temp_path {prefix}/tmp/body;
	proxy_temp_path {prefix}/tmp/proxy;
	fastcgi_temp_path {prefix}/tmp/fastcgi;
	uwsgi_temp_path {prefix}/tmp/uwsgi;
	scgi_temp_path {prefix}/tmp/scgi;
	server {{
		listen 127.0.0.1:{port};
{locations}
	}}
}}
"""


class Nginx:
    def __init__(self, prefix, files):
        """files: [(request path without query, file, content type)]."""
        self.prefix = prefix
        self.files = files
        self.proc = None
        self.port = None
        self.log = []

    def start(self, workers):
        self.stop()
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        locations = "".join(
            f"\t\tlocation = {path} {{\n\t\t\ttypes {{ }}\n"
            f"\t\t\tdefault_type \"{ctype}\";\n\t\t\talias {f};\n\t\t}}\n"
            for path, f, ctype in self.files)
        for attempt in range(5):
            self.port = free_port()
            conf = os.path.join(self.prefix, "nginx.conf")
            with open(conf, "w") as f:
                # As root the workers would switch to nobody, who cannot
                # read a private temporary directory: keep them as we are.
                f.write(NGINX_CONF.format(workers=workers, prefix=self.prefix, port=self.port,
                                          locations=locations,
                                          user="user root;" if os.geteuid() == 0 else ""))
            self.proc = subprocess.Popen([tool("nginx"), "-c", conf, "-p", self.prefix,
                                          "-e", os.path.join(self.prefix, "error.log")],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            threading.Thread(target=drain_pipe, args=(self.proc.stderr, self.log),
                             daemon=True).start()
            if wait_for(lambda: self.proc.poll() is not None or port_open(self.port), 10):
                if self.proc.poll() is None:
                    return True
            self.stop()
        return False

    def workers(self):
        return children(self.proc.pid) if self.proc else []

    def pids(self):
        return [self.proc.pid, *self.workers()] if self.proc else []

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the workers go too
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                for p in self.workers():
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# ---- wrk ----

def wrk_cmd(a, url, token):
    return [tool("wrk"), f"-t{a.threads}", f"-c{a.connections}", f"-d{a.duration}s", "--latency",
            "-H", f"Authorization: Bearer {token}", url]


def shown(cmd, token):
    return " ".join(shlex.quote(x) for x in cmd).replace(token, "$TOKEN")


def ms(text):
    """wrk's latency with its unit ("812.00us", "3.41ms", "1.02s") in ms."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]
    return float(m.group(1)) * scale


def parse_wrk(out):
    r = {"rps": None, "p50": None, "p99": None, "requests": None, "errors": ""}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            r["rps"] = float(s.split()[1])
        elif re.match(r"^50%\s", s):
            r["p50"] = ms(s.split()[1])
        elif re.match(r"^99%\s", s):
            r["p99"] = ms(s.split()[1])
        elif "requests in" in s:
            r["requests"] = int(s.split()[0])
        elif s.startswith("Socket errors:") or s.startswith("Non-2xx"):
            r["errors"] += s + "; "
    return r


def run_wrk(a, port, path, token, pids):
    """One wrk run; the CPU the processes pids used during it."""
    cmd = wrk_cmd(a, f"http://127.0.0.1:{port}{path}", token)
    cpu0 = cpu_of(pids)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.duration + 60)
    cpu1 = cpu_of(pids)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr.strip()}")
    r = parse_wrk(p.stdout)
    if r["rps"] is None or r["p99"] is None:
        raise RuntimeError(f"wrk's output was not understood:\n{p.stdout}")
    r["cpu"] = cpu1 - cpu0
    return r


# ---- the benchmark ----

def main():
    ap = argparse.ArgumentParser(description="REST API benchmark (tests/bench/README.md)")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2, help="wrk -t (2)")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c (32)")
    ap.add_argument("--duration", type=int, default=15, help="wrk -d, seconds (15)")
    ap.add_argument("--poll-interval", default="60s", help="[poll] interval (60s)")
    ap.add_argument("--only", default="devices,metrics", help="endpoints: devices,metrics")
    ap.add_argument("--no-auto", action="store_true", help="skip nginx worker_processes auto")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--wait", type=float, default=600,
                    help="seconds to wait for the first poll round of every device (600)")
    a = ap.parse_args()
    log("bench-api " + " ".join(shlex.quote(x) for x in sys.argv[1:]))
    why = install_tools()
    if why:
        return fail(f"cannot run without wrk and nginx: {why}")

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    h = Harness()
    # nginx's workers read it: not private like the harness's directory.
    www = tempfile.mkdtemp(prefix="smpgw-bench-nginx-")
    os.chmod(www, 0o755)
    nginx = Nginx(www, [])
    try:
        return run(h, a, nginx)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        nginx.stop()
        if a.keep:
            log(f"kept: {h.tmp} (smpgwd) and {www} (nginx); the processes are stopped")
            h.tmp = tempfile.mkdtemp(prefix="smpgw-bench-void-")  # what close() removes
        h.close()
        if not a.keep:
            shutil.rmtree(www, ignore_errors=True)


def run(h, a, nginx):
    only = [e for e in ENDPOINTS if e[0] in a.only.split(",")]
    t = time.monotonic()
    sim = h.sim("--udp", "127.0.0.1:0", "--count", str(a.devices))
    addrs = sim_udp_addresses(h, sim, a.devices, timeout=120)
    if not addrs:
        return fail("smp-sim did not start")
    log(f"smp-sim: {a.devices} UDP devices ready in {time.monotonic() - t:.1f} s")

    conf = f"[poll]\ninterval = {a.poll_interval}\n"
    conf += "".join(f"[device d{i:04d}]\ntransport = udp\naddress = {x}\n"
                    for i, x in enumerate(addrs))
    h.write_config(conf)
    token = h.token("bench", "viewer")
    t = time.monotonic()
    if not h.start_daemon(args=("--log-level", "notice"), timeout=120):
        return fail("smpgwd did not start")
    pid = h.gwd.pid
    log(f"smpgwd: pid {pid}, READY in {time.monotonic() - t:.1f} s, API on port {h.port}")

    # The cache is full when every device has a stats age in /metrics.
    def polled():
        st, body = http_get(h.port, "/metrics", token)
        return st == 200 and body.count(b"\nsmpgw_device_stats_age_seconds{") >= a.devices
    t = time.monotonic()
    if not wait_for(polled, a.wait, 0.5):
        return fail(f"not every device was polled in {a.wait:.0f} s; smpgwd log:\n" +
                    log_text(h.gwd, "", 0))
    log(f"first poll round of {a.devices} devices done in {time.monotonic() - t:.1f} s")

    # The exact bytes nginx will serve.
    files = []
    for name, path, ctype in only:
        st, body = http_get(h.port, path, token)
        if st != 200:
            return fail(f"GET {path}: {st}")
        f = os.path.join(nginx.prefix, name + (".json" if "json" in ctype else ".txt"))
        with open(f, "wb") as out:
            out.write(body)
        os.chmod(f, 0o644)
        files.append((path.split("?")[0], f, ctype))
        log(f"GET {path}: {len(body)} bytes saved to {os.path.basename(f)}")
    nginx.files = files

    results = []
    cpu0, rss0, _ = proc_stat(pid)
    for name, path, ctype in only:
        r = run_wrk(a, h.port, path, token, [pid])
        _, rss, hwm = proc_stat(pid)
        r.update(endpoint=path, server="smpgwd", rss=rss, hwm=hwm)
        results.append(r)
        log(f"  smpgwd {path}: {r['rps']:.0f} req/s, p99 {r['p99']:.2f} ms, "
            f"CPU {r['cpu']:.2f} s, RSS {rss / 1024:.1f} MiB")

    for workers in ("1", "auto") if not a.no_auto else ("1",):
        if not nginx.start(workers):
            return fail("nginx did not start: " + "\n".join(nginx.log))
        label = f"nginx worker_processes {workers}"
        if workers == "auto":
            label += f" ({len(nginx.workers())})"
        for (name, path, ctype), (_, f, _) in zip(only, files):
            st, body = http_get(nginx.port, path, token)
            with open(f, "rb") as saved:
                if st != 200 or body != saved.read():
                    return fail(f"nginx does not serve the saved bytes of {path}: {st}")
            r = run_wrk(a, nginx.port, path, token, nginx.pids())
            r.update(endpoint=path, server=label, rss=None, hwm=None)
            results.append(r)
            log(f"  {label} {path}: {r['rps']:.0f} req/s, p99 {r['p99']:.2f} ms, "
                f"CPU {r['cpu']:.2f} s")
        nginx.stop()

    cpu1, rss1, hwm1 = proc_stat(pid)
    report(a, token, only, files, results, cpu1 - cpu0, rss1, hwm1)
    t = time.monotonic()
    rc = h.stop_daemon()
    logged = h.daemon_log() if rc is not None else log_text(h.gwd, "", 0)
    if rc != 0:
        return fail(f"smpgwd did not exit cleanly after SIGTERM: exit status {rc} after "
                    f"{time.monotonic() - t:.1f} s; its log:\n{logged}")
    log(f"smpgwd stopped in {time.monotonic() - t:.1f} s, exit status 0; it logged "
        f"{len(logged.splitlines())} lines at notice or above after its start")
    return 0


def report(a, token, only, files, results, cpu, rss, hwm):
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    log("")
    log(f"wrk: {shown(wrk_cmd(a, 'http://127.0.0.1:PORT' + only[0][1], token), token)}")
    log(f"({a.devices} devices, [poll] interval {a.poll_interval}; {os.cpu_count()} CPUs; "
        f"load average after the runs {load})")
    log("")
    log(f"{'endpoint':<28} {'server':<33} {'bytes':>8} {'req/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'CPU s':>6} {'CPU/req':>9}")
    sizes = {path: os.path.getsize(f) for path, f, _ in files}
    for r in results:
        per = f"{1e6 * r['cpu'] / r['requests']:.0f} us" if r["requests"] else "-"
        log(f"{r['endpoint']:<28} {r['server']:<33} {sizes[r['endpoint'].split('?')[0]]:>8} "
            f"{r['rps']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['cpu']:>6.2f} {per:>9}")
        if r["errors"]:
            log(f"    wrk: {r['errors']}")
    log("")
    for name, path, _ in only:
        ours = next(r for r in results if r["endpoint"] == path and r["server"] == "smpgwd")
        for r in results:
            if r["endpoint"] != path or r["server"] == "smpgwd":
                continue
            ratio = ours["rps"] / r["rps"]
            goal = ""
            if r["server"] == "nginx worker_processes 1":
                goal = f"  goal >= 0.5 {'met' if ratio >= 0.5 else 'MISSED'}"
            log(f"{path}: smpgwd / {r['server']}: req/s ratio {ratio:.2f}, "
                f"p99 {ours['p99']:.2f} ms vs {r['p99']:.2f} ms{goal}")
    log("")
    log(f"smpgwd over the whole bench: CPU {cpu:.2f} s; RSS {rss / 1024:.1f} MiB, "
        f"peak (VmHWM) {hwm / 1024:.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())
