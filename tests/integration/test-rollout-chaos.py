#!/usr/bin/env python3
"""test-rollout-chaos: a 50-device test-confirm rollout against smp-sim with
frame drops, latency, slow boots on three devices and failing boots on three
more, while smpgwd is killed with SIGKILL at random moments (at least 20
times, seeded: the seed is printed, CHAOS_SEED=N repeats a run) and started
again each time. At the end: the rollout completed; exactly one job per
device; every job's history chains (each from is the previous to, the last
to is the job's state); the devices that cannot boot the image ended
rolled_back with a reason that says so, every other one succeeded; and
every device runs a confirmed image: the new one where its job succeeded,
its old one where it rolled back. Speaks TAP; every wait is bounded.
"""
import os
import random
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import (Harness, add_firmware, add_udp_devices, built, diag, done,  # noqa: E402
                        is_eq, ok, running_image, sim_udp_addresses, skip_all, top_builddir,
                        wait_for)

MKIMAGE = os.path.join(top_builddir, "tests", "sim", "mkimage")
KILLS = 20
N_FAST, N_SLOW, N_BAD = 44, 3, 3
FAULTS = ("--drop-rate", "0.03", "--latency", "4", "--jitter", "4")


def main():
    if not built() or not os.access(MKIMAGE, os.X_OK):
        return skip_all("smpgwd, smp-sim or mkimage not built")
    seed = int(os.environ.get("CHAOS_SEED", "0")) or random.SystemRandom().randrange(1, 2**31)
    diag(f"seed {seed} (CHAOS_SEED={seed} repeats this run)")
    h = Harness()
    try:
        run(h, random.Random(seed), seed)
    finally:
        h.close()
    return done()


def start(h):
    # Notices and worse: nobody reads the daemon's stderr pipe while the
    # rollout runs, and a full pipe would stall it.
    return h.start_daemon(args=("--log-level", "notice")) is not None and h.port


def run(h, rng, seed):
    t0 = time.monotonic()
    common = ("--udp", "127.0.0.1:0", "--seed", str(seed)) + FAULTS
    fast = h.sim(*common, "--count", str(N_FAST), "--name-prefix", "fast-", "--reboot-delay",
                 "300", control=True)
    slow = h.sim(*common, "--count", str(N_SLOW), "--name-prefix", "slow-", "--reboot-delay",
                 "2500", control=True)
    bad = h.sim(*common, "--count", str(N_BAD), "--name-prefix", "bad-", "--reboot-delay", "300",
                "--fail-boot", control=True)
    fast_addr = sim_udp_addresses(h, fast, N_FAST)
    slow_addr = sim_udp_addresses(h, slow, N_SLOW)
    bad_addr = sim_udp_addresses(h, bad, N_BAD)
    if not ok(fast_addr and slow_addr and bad_addr, "simulators ready (50 devices)"):
        return
    path = os.path.join(h.tmp, "image.bin")
    subprocess.run([MKIMAGE, "--version", "1.1.0", "--size", "16384", "--ident", "chaos", path],
                   check=True, capture_output=True, timeout=30)

    h.write_config("[smp]\ntimeout = 300ms\nretries = 4\n[poll]\ninterval = 2s\n"
                   "[daemon]\nshutdown_timeout = 2s\n")
    ops = h.token("ops", "operator")
    if not ok(start(h), "smpgwd started"):
        return
    fw = add_firmware(h, path, ops, "chaos")
    ids = add_udp_devices(h, fast_addr + slow_addr + bad_addr, ops)
    if not ok(fw and all(ids) and len(set(ids)) == 50, "an image and 50 devices registered"):
        return
    bad_ids = set(ids[N_FAST + N_SLOW:])

    def online():
        st, body, _ = h.request("GET", "/api/v1/devices?online=true&limit=100", token=ops)
        return st == 200 and len(body["devices"]) == 50
    ok(wait_for(online, 30, 0.2), "every device is online (polled)")
    old = {}
    for d in ids:
        img = wait_for(lambda: running_image(h, d, ops), 10, 0.05)
        old[d] = img and img["hash"]
    ok(all(old.values()), "every device's factory image noted")

    body = {"firmware": fw["id"], "devices": ids, "name": "chaos",
            "strategy": {"mode": "test-confirm", "max_parallel": 2, "retries": 30,
                         "backoff": 0.2, "backoff_max": 1, "reboot_timeout": 30}}
    st, ro, _ = h.request("POST", "/api/v1/rollouts", body=body, token=ops)
    if not is_eq(st, 201, "the 50-device rollout started"):
        diag(ro)
        return
    rid = ro["id"]

    # Kill at random moments while it runs; start again each time.
    kills, running_kills, stuck = 0, 0, []
    finals = []
    while running_kills < KILLS and kills < 2 * KILLS:
        time.sleep(rng.uniform(0.05, 1.0))
        st, view, _ = h.request("GET", f"/api/v1/rollouts/{rid}", token=ops)
        if st == 200 and view["state"] == "running":
            running_kills += 1
        elif st == 200:
            break
        h.gwd.kill()
        h.gwd.wait(10)
        kills += 1
        if not start(h):
            ok(False, f"smpgwd starts again after kill {kills}")
            return
        st, view, _ = h.request("GET", f"/api/v1/rollouts/{rid}", token=ops)
        if st != 200 or view["state"] not in ("running", "completed"):
            stuck.append((kills, st, view))
        else:
            done_now = sum(view["jobs"][s] for s in ("succeeded", "failed", "rolled_back",
                                                     "canceled"))
            finals.append(done_now)
    diag(f"{kills} kills, {running_kills} while the rollout ran; final jobs after each "
         f"restart: {finals}")
    ok(running_kills >= KILLS, f"at least {KILLS} kills hit the running rollout")
    ok(not stuck, "after every restart the rollout is there and running (or done)")
    for s in stuck:
        diag(f"after kill {s[0]}: {s[1]} {s[2]}")
    ok(finals == sorted(finals), "finished jobs never go back across restarts")

    last = [None]

    def finished():
        st, view, _ = h.request("GET", f"/api/v1/rollouts/{rid}", token=ops)
        last[0] = view if st == 200 else None
        return last[0] and last[0]["state"] not in ("running", "waiting")
    ok(wait_for(finished, 150, 0.25), "the rollout finishes after the last restart")
    view = last[0] or {}
    if not is_eq(view.get("state"), "completed", "it completed"):
        diag(view)
    diag(f"jobs: {view.get('jobs')}; {time.monotonic() - t0:.1f} s so far")

    # The devices as they are, asked without faults.
    for p in (fast, slow, bad):
        for cmd in ("set drop-rate 0", "set latency 0", "set jitter 0"):
            h.sim_command(p, cmd)
    st, jobs_body, _ = h.request("GET", f"/api/v1/jobs?rollout={rid}", token=ops)
    state_of = {j["device"]: j for j in (jobs_body["jobs"] if st == 200 else [])}
    wrong = []
    for d in ids:
        img = wait_for(lambda: running_image(h, d, ops), 10, 0.1)
        job = state_of.get(d, {})
        want = fw["image_hash"] if job.get("state") == "succeeded" else old[d]
        if not img or not img.get("confirmed") or img.get("hash") != want:
            wrong.append((d, job.get("state"), img))
    ok(not wrong, "every device runs a confirmed image: the new one where its job succeeded, "
       "its old one where it rolled back")
    for w in wrong:
        diag(f"{w[0]}: job {w[1]}, running {w[2]}")
    is_eq(h.stop_daemon(), 0, "smpgwd stops cleanly at the end")

    check_db(h, rid, ids, bad_ids)
    diag(f"{time.monotonic() - t0:.1f} s in all")


def check_db(h, rid, ids, bad_ids):
    db = sqlite3.connect(os.path.join(h.state, "smpgw.db"))
    try:
        jobs = db.execute("SELECT id, device_id, state, reason FROM jobs WHERE rollout_id = ? "
                          "ORDER BY id", (rid,)).fetchall()
        devices = [j[1] for j in jobs]
        is_eq(len(jobs), 50, "sqlite: 50 jobs in the rollout")
        is_eq(sorted(devices), sorted(ids), "sqlite: exactly one job per device, none lost")
        is_eq(db.execute("SELECT count(*) FROM jobs").fetchone()[0], 50,
              "sqlite: no other job anywhere")
        broken = []
        for jid, dev, state, reason in jobs:
            ev = db.execute("SELECT from_state, to_state FROM job_events WHERE job_id = ? "
                            "ORDER BY id", (jid,)).fetchall()
            chained = bool(ev) and ev[0][0] is None and ev[0][1] == "queued" and \
                all(b[0] == a[1] for a, b in zip(ev, ev[1:])) and ev[-1][1] == state
            if not chained:
                broken.append((jid, dev, ev))
        ok(not broken, "sqlite: every job's events chain from queued to its state")
        for b in broken[:3]:
            diag(f"job {b[0]} ({b[1]}): {b[2]}")
        rolled = {d: (s, r) for _, d, s, r in jobs if d in bad_ids}
        ok(all(s == "rolled_back" and ("boot" in r or "revert" in r) for s, r in rolled.values()),
           "the devices that cannot boot the image ended rolled_back, saying why")
        for d, (s, r) in rolled.items():
            diag(f"{d}: {s}: {r}")
        others = [(d, s, r) for _, d, s, r in jobs if d not in bad_ids and s != "succeeded"]
        ok(not others, "every other device succeeded")
        for o in others:
            diag(f"{o[0]}: {o[1]}: {o[2]}")
        n_events = db.execute("SELECT count(*) FROM job_events e JOIN jobs j ON j.id = e.job_id "
                              "WHERE j.rollout_id = ?", (rid,)).fetchone()[0]
        diag(f"{n_events} job events for 50 jobs")
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())
