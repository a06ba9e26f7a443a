#!/usr/bin/env python3
"""bench-rollout: a rollout to 1,000 simulated UDP devices through the real
smpgwd: wall time against the ideal, the daemon's CPU, sqlite writes per job.

    make bench-rollout                   # 1,000 devices, max_parallel 50
    make bench-rollout BENCH_ROLLOUT_ARGS="--devices 200 --parallel 20 --mode test-confirm"

The per-device link limit is measured, not assumed: the same image is sent
alone to each of three spare devices of the same smp-sim process (one-device
rollouts, one after the other) and the limit is the image size divided by the
median duration of such a job, from its first to its last transition (the
engine's own timestamps: connect, state read, upload, check; for test-confirm
also test, reset, reboot, verify, confirm). So the ideal,

    total bytes / (per-device limit x max_parallel) = jobs / max_parallel x one job alone,

is what max_parallel lanes would take with no scheduling, CPU or sqlite cost
between jobs. The rollout's wall time is finished_at - created_at of the
rollout (the daemon's clock). Daemon CPU: utime + stime of /proc/PID/stat
over the rollout. Sqlite writes: smpgw_db_writes_total of /metrics (every
INSERT, UPDATE and DELETE of the data-access modules) over the rollout,
divided by the jobs; the job_events rows per job are counted after the run.
Not a test: prints figures and a verdict against the goal (wall <= 1.2 x ideal).
"""
import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from smpgw_test import (Harness, add_firmware, sim_udp_addresses, top_builddir,  # noqa: E402
                        wait_for)

MKIMAGE = os.path.join(top_builddir, "tests", "sim", "mkimage")
SPARE = 3


def cpu_s(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def db_writes(h, token):
    st, body, _ = h.request("GET", "/metrics", token=token, raw=True)
    for line in body.decode().splitlines():
        if line.startswith("smpgw_db_writes_total"):
            return int(line.split()[-1])
    raise RuntimeError("/metrics has no smpgw_db_writes_total")


def job_duration_ms(h, token, jid):
    st, job, _ = h.request("GET", f"/api/v1/jobs/{jid}", token=token)
    ev = job["events"]
    return job["state"], ev[-1]["at"] - ev[0]["at"]


def main():
    ap = argparse.ArgumentParser(description="rollout benchmark (tests/bench/README.md)")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=50)
    ap.add_argument("--size", type=int, default=65536, help="image payload bytes")
    ap.add_argument("--mode", default="upload-only",
                    choices=("upload-only", "test-confirm", "confirm"))
    ap.add_argument("--sim-args", default="", help="more smp-sim options, one string")
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args()
    if not os.access(MKIMAGE, os.X_OK):
        print("bench-rollout: build first (make): tests/sim/mkimage is missing", file=sys.stderr)
        return 1

    h = Harness()
    try:
        return run(h, a)
    finally:
        h.close()


def run(h, a):
    n = a.devices + SPARE
    image = os.path.join(h.tmp, "image.bin")
    out = subprocess.run([MKIMAGE, "--version", "2.0.0", "--size", str(a.size), "--ident",
                          "bench", image], check=True, capture_output=True, text=True)
    print(f"image: {out.stdout.strip()}")
    t = time.monotonic()
    sim = h.sim("--udp", "127.0.0.1:0", "--count", str(n), *a.sim_args.split())
    addrs = sim_udp_addresses(h, sim, n, timeout=120)
    if not addrs:
        print("bench-rollout: smp-sim did not start", file=sys.stderr)
        return 1
    print(f"smp-sim: {n} devices ready in {time.monotonic() - t:.1f} s")
    conf = "[smp]\ntimeout = 2s\n[poll]\ninterval = 0\n[rollouts]\nmax_jobs = 0\n"
    conf += "".join(f"[device d{i}]\ntransport = udp\naddress = {x}\n" for i, x in enumerate(addrs))
    h.write_config(conf)
    tok = h.token("bench", "operator")
    t = time.monotonic()
    # Notices and worse only: nobody reads the daemon's stderr pipe during the
    # run, and a full pipe would stall it.
    if not h.start_daemon(args=("--log-level", "notice"), timeout=120):
        print("bench-rollout: smpgwd did not start", file=sys.stderr)
        return 1
    pid = h.gwd.pid
    print(f"smpgwd: READY with {n} devices in {time.monotonic() - t:.1f} s, "
          f"RSS {rss_kib(pid) / 1024:.1f} MiB")
    fw = add_firmware(h, image, tok, "bench")
    by_addr, cursor = {}, ""
    while True:
        st, body, _ = h.request("GET", f"/api/v1/devices?limit=1000{cursor}", token=tok)
        by_addr.update({d["address"]: d["id"] for d in body["devices"]})
        if not body.get("next_cursor"):
            break
        cursor = f"&cursor={body['next_cursor']}"
    ids = [by_addr[x] for x in addrs]

    # The per-device limit: one device alone, three times.
    alone = []
    for d in ids[a.devices:]:
        st, body, _ = h.request("POST", f"/api/v1/devices/{d}/images/upload", token=tok,
                                body={"firmware": fw["id"], "mode": a.mode})
        jid = body["job"]
        wait_for(lambda: h.request("GET", f"/api/v1/jobs/{jid}", token=tok)[1]["state"]
                 in ("succeeded", "failed", "rolled_back", "canceled"), 120, 0.02)
        state, ms = job_duration_ms(h, tok, jid)
        if state != "succeeded":
            print(f"bench-rollout: the lone job on {d} ended {state}", file=sys.stderr)
            return 1
        alone.append(ms)
    one_ms = statistics.median(alone)
    limit = fw["size"] / (one_ms / 1000)
    print(f"one device alone ({a.mode}): {alone} ms per job, median {one_ms} ms "
          f"= {limit / 1000:.1f} kB/s per device (the per-device link limit)")

    # The rollout.
    cpu0, writes0 = cpu_s(pid), db_writes(h, tok)
    st, ro, _ = h.request("POST", "/api/v1/rollouts", token=tok, timeout=120,
                          body={"firmware": fw["id"], "devices": ids[:a.devices],
                                "name": "bench", "strategy": {"mode": a.mode,
                                                              "max_parallel": a.parallel}})
    if st != 201:
        print(f"bench-rollout: the rollout was refused: {st} {ro}", file=sys.stderr)
        return 1
    rid = ro["id"]
    sim_cpu0 = cpu_s(sim.pid)
    rss_peak = 0
    view = None
    end = time.monotonic() + a.timeout
    while time.monotonic() < end:
        st, view, _ = h.request("GET", f"/api/v1/rollouts/{rid}", token=tok)
        rss_peak = max(rss_peak, rss_kib(pid))
        if view["state"] not in ("running", "waiting"):
            break
        time.sleep(0.5)
    cpu1, writes1, sim_cpu1 = cpu_s(pid), db_writes(h, tok), cpu_s(sim.pid)
    if view["state"] != "completed":
        print(f"bench-rollout: the rollout is {view['state']}: {view['jobs']}", file=sys.stderr)
        return 1
    wall = (view["finished_at"] - view["created_at"]) / 1000
    total = view["bytes_total"]
    ideal = total / (limit * a.parallel)
    jobs = view["jobs"]["total"]
    h.stop_daemon()
    db = sqlite3.connect(os.path.join(h.state, "smpgw.db"))
    events = db.execute("SELECT count(*) FROM job_events e JOIN jobs j ON j.id = e.job_id "
                        "WHERE j.rollout_id = ?", (rid,)).fetchone()[0]
    # Where the time went: each job's span, and how many ran at once on average.
    spans = [r[0] for r in db.execute(
        "SELECT max(e.at) - min(CASE WHEN e.to_state = 'connecting' THEN e.at END) "
        "FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.rollout_id = ? GROUP BY j.id",
        (rid,))]
    phases = db.execute("SELECT e.to_state, count(*) FROM job_events e JOIN jobs j "
                        "ON j.id = e.job_id WHERE j.rollout_id = ? GROUP BY e.to_state",
                        (rid,)).fetchall()
    db.close()

    ratio = wall / ideal
    print(f"rollout: {jobs} jobs ({view['jobs']['succeeded']} succeeded), {a.mode}, "
          f"max_parallel {a.parallel}, {total} bytes")
    print(f"  wall {wall:.2f} s, ideal {ideal:.2f} s (= {total} B / ({limit / 1000:.1f} kB/s x "
          f"{a.parallel})): ratio {ratio:.3f}, goal <= 1.2: {'met' if ratio <= 1.2 else 'missed'}")
    print(f"  aggregate {total / wall / 1e6:.2f} MB/s; {jobs / wall:.1f} jobs/s")
    print(f"  smpgwd CPU {cpu1 - cpu0:.2f} s ({100 * (cpu1 - cpu0) / wall:.0f} % of one core), "
          f"{1000 * (cpu1 - cpu0) / jobs:.2f} ms per job; RSS peak {rss_peak / 1024:.1f} MiB")
    print(f"  smp-sim CPU {sim_cpu1 - sim_cpu0:.2f} s ({100 * (sim_cpu1 - sim_cpu0) / wall:.0f} % "
          f"of one core)")
    print(f"  a job in the rollout, from connecting to its end: median {statistics.median(spans):.0f} ms, mean "
          f"{statistics.mean(spans):.0f} ms, max {max(spans)} ms (alone: {one_ms} ms); jobs "
          f"under way on average {sum(spans) / 1000 / wall:.1f} of {a.parallel}")
    print(f"  transitions: {dict(phases)}")
    print(f"  sqlite writes {writes1 - writes0} = {(writes1 - writes0) / jobs:.2f} per job; "
          f"job_events {events} = {events / jobs:.2f} per job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
