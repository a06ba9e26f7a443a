#!/usr/bin/env python3
"""test-reload: SIGHUP against the real smpgwd and smp-sim UDP devices.
What a reload must change at once: [poll] interval (turned on, then made
shorter than a long one already scheduled) and [rollouts] max_jobs (a
rollout held to one job at a time runs three at once after the cap is
lifted). What it must leave alone and say so: [http] listen (the API stays
on its port and a notice names the key). Speaks TAP; every wait is bounded.
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import (Harness, add_firmware, add_udp_devices, built, diag, done,  # noqa: E402
                        jobs_under_way, log_text, ok, sim_udp_addresses, skip_all, top_srcdir,
                        wait_for, wait_rollout)

IMAGE = os.path.join(top_srcdir, "tests", "data", "images", "hash-only-1.2.3+4.bin")


def main():
    if not built():
        skip_all("smpgwd or smp-sim not built")
    h = Harness()
    try:
        run(h)
    finally:
        h.close()
    done()


def stats_ages(h, viewer):
    """Each polled device's stats age in seconds, from /metrics."""
    st, body, _ = h.request("GET", "/metrics", token=viewer, raw=True)
    text = body.decode() if st == 200 else ""
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^smpgw_device_stats_age_seconds\{device="([^"]*)"\} (\S+)$', text, re.M)}


def run(h):
    # 20,000 B/s per link: a 70 KB upload takes about 3.5 s, long enough to
    # see how many jobs run at once.
    sim = h.sim("--udp", "127.0.0.1:0", "--count", "3", "--bandwidth", "20000")
    addrs = sim_udp_addresses(h, sim, 3)
    if not ok(addrs is not None, "smp-sim serves 3 UDP devices"):
        return
    operator = h.token("op", "operator")
    viewer = h.token("view", "viewer")
    base = "[rollouts]\nmax_jobs = 1\n"
    gwd = h.start_daemon(base)
    if not ok(gwd is not None, "smpgwd is READY with [poll] interval = 0 and max_jobs = 1"):
        return
    ids = add_udp_devices(h, addrs, operator)
    ok(all(ids), "three UDP devices registered")
    time.sleep(1.5)
    ok(not set(stats_ages(h, viewer)) & set(ids), "polling off: no device polled")

    # [poll] interval turned on by a reload: every device becomes due within the jitter.
    h.write_config(base + "[poll]\ninterval = 2s\n")
    gwd.send_signal(signal.SIGHUP)
    ok(wait_for(lambda: set(ids) <= set(stats_ages(h, viewer)), 15),
       "after SIGHUP with [poll] interval = 2s every device is polled")
    ok("interval 2000 ms" in log_text(gwd, "interval 2000 ms", 5),
       "the poller logs its new interval")

    # A long interval, then a short one: the short one applies at once, not
    # after the long wait already scheduled.
    h.write_config(base + "[poll]\ninterval = 1h\n")
    gwd.send_signal(signal.SIGHUP)
    log_text(gwd, "interval 3600000 ms", 5)
    time.sleep(0.5)

    # A round already due under the 2 s interval still runs (a longer
    # interval applies from each device's next round); after it, none.
    time.sleep(3)
    a1 = stats_ages(h, viewer)
    time.sleep(2.5)
    a2 = stats_ages(h, viewer)
    ok(len(a1) == 3 and all(a2.get(d, 0) >= a1[d] + 2 for d in a1),
       f"with a 1 h interval no device is polled again (ages {a1} -> {a2})")
    h.write_config(base + "[poll]\ninterval = 1s\njitter = 0\n")
    gwd.send_signal(signal.SIGHUP)
    ok(wait_for(lambda: (lambda a: len(a) == 3 and max(a.values()) < 2.0)(stats_ages(h, viewer)), 10),
       "a shorter interval by SIGHUP applies at once: every device polled again")

    # [http] listen cannot move under a running daemon: the API stays, a notice says why.
    ok("[http] listen changed" not in log_text(gwd, "", 0), "no notice about [http] so far")
    h.write_config(base + "[poll]\ninterval = 1s\n", listen="127.0.0.1:1")
    gwd.send_signal(signal.SIGHUP)
    text = log_text(gwd, "[http] listen changed", 5)
    ok("[http] listen changed: it takes effect when smpgwd restarts" in text,
       "a changed [http] listen is named in a notice")
    st, _, _ = h.request("GET", "/api/v1/health")
    ok(st == 200, "the API still answers on its port after the reload")
    h.write_config(base + "[poll]\ninterval = 1s\n")
    gwd.send_signal(signal.SIGHUP)

    # [rollouts] max_jobs: one job at a time, then the cap lifted by SIGHUP.
    fw = add_firmware(h, IMAGE, operator)
    if not ok(fw is not None, "firmware stored"):
        return
    st, ro, _ = h.request("POST", "/api/v1/rollouts", token=operator, body={
        "firmware": fw["id"], "devices": ids,
        "strategy": {"mode": "upload-only", "max_parallel": 3}})
    if not ok(st == 201, f"rollout of 3 devices created (status {st})"):
        diag(repr(ro))
        return
    rid = ro["id"]

    most = 0
    end = time.monotonic() + 2.0
    ok(wait_for(lambda: jobs_under_way(h, rid, viewer) >= 1, 10), "a job starts")
    while time.monotonic() < end:
        most = max(most, jobs_under_way(h, rid, viewer))
        time.sleep(0.05)
    ok(most == 1, f"max_jobs = 1: one job under way at a time (saw {most})")
    h.write_config("[rollouts]\nmax_jobs = 0\n[poll]\ninterval = 1s\n")
    gwd.send_signal(signal.SIGHUP)
    ok(wait_for(lambda: jobs_under_way(h, rid, viewer) >= 2, 10),
       "after SIGHUP lifting max_jobs the waiting jobs start at once")
    ro = wait_rollout(h, rid, viewer, ("completed", "failed", "canceled"), 60)
    ok(ro and ro["state"] == "completed", f"the rollout completes ({ro and ro['state']})")

    ok(gwd.poll() is None, "smpgwd kept running through every reload")
    rc = h.stop_daemon()
    ok(rc == 0, f"smpgwd exits 0 on SIGTERM (got {rc})")
    log = h.daemon_log(gwd)
    ok("reload failed" not in log, "no reload failed")


if __name__ == "__main__":
    main()
