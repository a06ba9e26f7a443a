#!/usr/bin/env python3
"""test-shutdown: smpgwd's bounded shutdown. On SIGTERM the daemon takes no
new work, waits for the work in flight (here: a poll round whose request the
device answers slowly) at most [daemon] shutdown_timeout, and exits 0; a
second SIGTERM exits at once. The device is smp-sim over loopback UDP; its
answer delay is changed at run time through --control, so that the slow
request is one of a device already online. Every wait is bounded."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import (Harness, built, diag, done, is_eq, ok, skip_all,  # noqa: E402
                        wait_line)


def device_conf(addr, extra=""):
    return (f"[device slow]\ntransport = udp\naddress = {addr}\n"
            "[poll]\ninterval = 1s\njitter = 0\n" + extra)


def start(h, extra, latency_ms):
    """smp-sim and smpgwd; returns (sim, daemon) once a poll round waits
    for an answer that takes latency_ms, or (sim, None)."""
    sim = h.sim("--udp", "127.0.0.1:0", control=True)
    ready = h.wait_sim(sim, "READY udp")
    if not ready:
        return sim, None
    gwd = h.start_daemon(extra_config=device_conf(ready.split()[2], extra),
                         args=("--debug", "poller"))
    if not gwd:
        return sim, None
    # The first (full) round answers at once; then the device turns slow,
    # and the next round's first request waits.
    if not wait_line(gwd, "answers, online", 20, stream="stderr"):
        diag("the device never came online")
        return sim, None
    h.sim_command(sim, f"set latency {latency_ms}")
    if not wait_line(gwd, "short round", 20, stream="stderr"):
        diag("no second poll round")
        return sim, None
    return sim, gwd


def main():
    if not built():
        return skip_all("smpgwd or smp-sim not built")
    h = Harness()
    try:
        # Nothing in flight: SIGTERM exits at once.
        sim = h.sim("--udp", "127.0.0.1:0")
        ready = h.wait_sim(sim, "READY udp")
        gwd = h.start_daemon(extra_config="[device idle]\ntransport = udp\naddress = %s\n"
                             % ready.split()[2])
        ok(gwd is not None, "smpgwd starts")
        rc = h.stop_daemon(timeout=10)
        log = h.daemon_log()
        is_eq(rc, 0, "idle: SIGTERM exits 0")
        ok("shutting down" in log and "waiting for" not in log,
           "idle: nothing in flight, nothing to wait for")
        sim.terminate()

        # A poll round in flight: the daemon waits for the device's answer.
        sim, gwd = start(h, "", 700)
        ok(gwd is not None, "a poll round waits for a slow answer (0.7 s; [smp] timeout is 1 s)")
        if gwd:
            gwd.send_signal(signal.SIGTERM)
            ok(h.wait_notify("STOPPING=1", 5), "STOPPING=1 at once")
            ok(wait_line(gwd, "shutdown: waiting for 1 task(s) in flight, at most 10000 ms",
                         5, stream="stderr"),
               "it waits for the one round in flight, within the default 10 s")
            line = wait_line(gwd, "shutdown: the work in flight is done", 10, stream="stderr")
            ok(line, "until the answer came")
            diag(line or "")
            try:
                rc = gwd.wait(10)
            except Exception:
                rc = None
            is_eq(rc, 0, "then exits 0")
            log = h.daemon_log()
            ok("still in flight" not in log, "within the bound")
        sim.terminate()

        # The bound: an answer that takes 8 s is not waited for past 1 s.
        sim, gwd = start(h, "[daemon]\nshutdown_timeout = 1s\n", 8000)
        ok(gwd is not None, "a poll round waits for an 8 s answer")
        if gwd:
            t0 = time.monotonic()
            gwd.send_signal(signal.SIGTERM)
            ok(wait_line(gwd, "shutdown: waiting for 1 task(s) in flight, at most 1000 ms",
                         5, stream="stderr"), "shutdown_timeout = 1s: waits at most 1000 ms")
            line = wait_line(gwd, "still in flight after", 10, stream="stderr")
            ok(line and "shutdown_timeout" in line, "then leaves the round behind")
            try:
                rc = gwd.wait(10)
            except Exception:
                rc = None
            elapsed = time.monotonic() - t0
            is_eq(rc, 0, "and exits 0")
            # The answer would have come 8 s after the request.
            ok(elapsed < 6, f"well before the answer ({elapsed:.1f} s after SIGTERM)")
            h.daemon_log()
        sim.terminate()

        # A second SIGTERM does not wait.
        sim, gwd = start(h, "[daemon]\nshutdown_timeout = 60s\n", 8000)
        ok(gwd is not None, "a poll round waits for an 8 s answer, shutdown_timeout = 60s")
        if gwd:
            t0 = time.monotonic()
            gwd.send_signal(signal.SIGTERM)
            ok(wait_line(gwd, "shutdown: waiting for 1 task(s)", 5, stream="stderr"),
               "the first SIGTERM waits")
            gwd.send_signal(signal.SIGTERM)
            ok(wait_line(gwd, "second Terminated: leaving now", 5, stream="stderr"),
               "the second leaves at once")
            try:
                rc = gwd.wait(10)
            except Exception:
                rc = None
            elapsed = time.monotonic() - t0
            is_eq(rc, 0, "exit 0")
            ok(elapsed < 6, f"without waiting for the answer ({elapsed:.1f} s)")
            h.daemon_log()
        sim.terminate()

        # shutdown_timeout = 0: no wait at all.
        sim, gwd = start(h, "[daemon]\nshutdown_timeout = 0\n", 8000)
        ok(gwd is not None, "a poll round in flight, shutdown_timeout = 0")
        if gwd:
            rc = h.stop_daemon(timeout=10)
            log = h.daemon_log()
            is_eq(rc, 0, "exit 0")
            ok("waiting for" not in log, "nothing waited for")
        sim.terminate()
    finally:
        h.close()
    return done()


if __name__ == "__main__":
    sys.exit(main())
