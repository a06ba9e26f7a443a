#!/usr/bin/env python3
"""test-rollout-ble: a rollout to BLE devices through the fake BlueZ on a
private bus keeps within [ble] max_connections. Four smp-sim BLE devices
on an adapter that accepts two LE connections (--ble-max-connections 2,
so a third connection attempt would fail), smpgwd with [ble]
max_connections = 2, a rollout with max_parallel 4: never more than two
jobs under way, every job succeeds, none fails on a connection, and an
interactive read of a device waiting its turn is answered once a
connection frees (it waits, it does not fail). Speaks TAP; every wait is
bounded.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import (Harness, add_firmware, built, diag, done,  # noqa: E402
                        jobs_under_way, ok, skip_all, top_srcdir, wait_for, wait_line,
                        wait_rollout)

IMAGE = os.path.join(top_srcdir, "tests", "data", "images", "hash-only-1.2.3+4.bin")
COUNT = 4


def main():
    if not built():
        skip_all("smpgwd or smp-sim not built")
    h = Harness(dbus=True)
    try:
        if not h.bus:
            skip_all("dbus-daemon not available")
        run(h)
    finally:
        h.close()
    done()


def run(h):
    # One connection event each 15 ms: a 70 KB upload takes about a second,
    # so jobs overlap if the budget lets them.
    sim = h.sim("--ble", "--ble-bus", h.bus, "--count", str(COUNT), "--ble-max-connections",
                "2", "--ble-conn-interval", "15", "--name-prefix", "ble-")
    ok(all(wait_line(sim, "READY ble", 10) for _ in range(COUNT)), "4 BLE devices advertise")
    operator = h.token("op", "operator")
    viewer = h.token("view", "viewer")
    gwd = h.start_daemon("[ble]\nmax_connections = 2\nidle_timeout = 1s\n")
    if not ok(gwd is not None, "smpgwd is READY with [ble] max_connections = 2"):
        return

    def ble_devices():
        st, body, _ = h.request("GET", "/api/v1/devices?transport=ble", token=viewer)
        return body["devices"] if st == 200 else []
    ok(wait_for(lambda: len(ble_devices()) == COUNT, 20), "smpgwd discovers the 4 BLE devices")
    ids = sorted(d["id"] for d in ble_devices())

    fw = add_firmware(h, IMAGE, operator)
    if not ok(fw is not None, "firmware stored"):
        return
    st, ro, _ = h.request("POST", "/api/v1/rollouts", token=operator, body={
        "firmware": fw["id"], "devices": ids,
        "strategy": {"mode": "upload-only", "max_parallel": COUNT}})
    if not ok(st == 201, f"rollout of 4 BLE devices, max_parallel 4 (status {st})"):
        diag(repr(ro))
        return
    rid = ro["id"]

    # Sample the jobs while the rollout runs; meanwhile ask one device for its
    # OS info: with both connections taken it waits, it does not fail.
    samples, stop = [], threading.Event()

    def sampler():
        while not stop.is_set():
            samples.append(jobs_under_way(h, rid, viewer))
            time.sleep(0.05)
    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    wait_for(lambda: samples and samples[-1] >= 2, 10)
    st, info, _ = h.request("GET", f"/api/v1/devices/{ids[-1]}/os/info", token=viewer,
                            timeout=60)
    ok(st == 200, f"an interactive read during the rollout is answered ({st})")
    last = wait_rollout(h, rid, viewer, ("completed", "failed", "canceled", "paused"), 120)
    stop.set()
    t.join(5)
    ok(last and last["state"] == "completed", f"the rollout completes ({last and last['state']})")
    ok(samples and max(samples) <= 2, f"never more than 2 jobs under way (max {max(samples or [0])}"
       f" over {len(samples)} samples)")
    ok(samples and max(samples) == 2, "two jobs did run at once")
    st, body, _ = h.request("GET", f"/api/v1/jobs?rollout={rid}", token=viewer)
    jobs = body["jobs"] if st == 200 else []
    ok(len(jobs) == COUNT and all(j["state"] == "succeeded" for j in jobs),
       "every job succeeded: " + ", ".join(j["state"] for j in jobs))
    ok(jobs and all(j["attempt"] <= 1 for j in jobs),
       "none needed a retry (no refused connection): attempts "
       + ", ".join(str(j["attempt"]) for j in jobs))
    rc = h.stop_daemon()
    ok(rc == 0, f"smpgwd exits 0 on SIGTERM (got {rc})")


if __name__ == "__main__":
    main()
