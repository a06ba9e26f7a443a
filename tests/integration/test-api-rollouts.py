#!/usr/bin/env python3
"""test-api-rollouts: the rollout routes of the real smpgwd against smp-sim
UDP devices: a 5-device test-confirm rollout to completion (every device
confirmed on the new hash, asked with ?refresh=true), the job list and
history, pause/resume/cancel, a canary that rolls back and holds the rest,
a single-device upload followed to its end, the job.state and
rollout.progress events on /api/v1/events, and every route's errors (401,
403, 400, 404, 409). Speaks TAP; every wait is bounded.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import (Harness, SseStream, add_firmware, add_udp_devices, built,  # noqa: E402
                        diag, done, error_code, is_eq, job_history_consistent, ok,
                        running_image, sim_udp_addresses, skip_all, top_srcdir, wait_for,
                        wait_rollout)

IMAGES = os.path.join(top_srcdir, "tests", "data", "images")
IMAGE_A = os.path.join(IMAGES, "hash-only-1.2.3+4.bin")
IMAGE_B = os.path.join(IMAGES, "ecdsa-p256-2.0.0.bin")
FINAL = ("succeeded", "failed", "rolled_back", "canceled")


def is_err(res, status, code, name):
    st, body, _ = res
    if not ok(st == status and error_code(body) == code, name):
        diag(f"got {st} {body!r}")
        return False
    return True


class Api:
    def __init__(self, h, viewer, operator):
        self.h, self.viewer, self.operator = h, viewer, operator

    def get(self, path, token=None):
        return self.h.request("GET", path, token=token or self.viewer)

    def post(self, path, body=None, token=None, **kw):
        return self.h.request("POST", path, body=body, token=token or self.operator, **kw)

    def job(self, jid):
        st, body, _ = self.get(f"/api/v1/jobs/{jid}")
        return body if st == 200 else None

    def jobs(self, query):
        st, body, _ = self.get(f"/api/v1/jobs?{query}")
        return body["jobs"] if st == 200 else None

    def wait_job(self, jid, states, timeout):
        last = [None]

        def check():
            last[0] = self.job(jid)
            return last[0] and last[0]["state"] in states
        wait_for(check, timeout, 0.1)
        return last[0]


def main():
    if not built():
        return skip_all("smpgwd or smp-sim not built")
    h = Harness()
    try:
        run(h)
    finally:
        h.close()
    return done()


def run(h):
    # fast: 6 quick devices; slow: 3 whose flash takes 3.5 s per image (to
    # pause and cancel mid-rollout); bad: one whose new images crash at boot.
    fast = h.sim("--udp", "127.0.0.1:0", "--count", "6", "--name-prefix", "fast-",
                 "--reboot-delay", "200")
    slow = h.sim("--udp", "127.0.0.1:0", "--count", "3", "--name-prefix", "slow-",
                 "--flash-write-us-per-kib", "50000", "--reboot-delay", "200")
    bad = h.sim("--udp", "127.0.0.1:0", "--name-prefix", "bad-", "--fail-boot",
                "--reboot-delay", "200")
    fast_addr = sim_udp_addresses(h, fast, 6)
    slow_addr = sim_udp_addresses(h, slow, 3)
    bad_addr = sim_udp_addresses(h, bad, 1)
    if not ok(fast_addr and slow_addr and bad_addr, "simulators ready"):
        return
    h.write_config("[smp]\ntimeout = 1s\nretries = 2\n[poll]\ninterval = 1s\n")
    api = Api(h, h.token("dash", "viewer"), h.token("ops", "operator"))
    if not ok(h.start_daemon() is not None and h.port, "smpgwd started"):
        return
    fw_a = add_firmware(h, IMAGE_A, api.operator, "app")
    fw_b = add_firmware(h, IMAGE_B, api.operator, "app")
    if not ok(fw_a and fw_b, "two images stored"):
        return
    fast_ids = add_udp_devices(h, fast_addr, api.operator)
    slow_ids = add_udp_devices(h, slow_addr, api.operator)
    bad_ids = add_udp_devices(h, bad_addr, api.operator)
    if not ok(all(fast_ids + slow_ids + bad_ids), "10 devices registered"):
        return

    def online():
        st, body, _ = api.get("/api/v1/devices?online=true&limit=100")
        return st == 200 and len(body["devices"]) == 10
    ok(wait_for(online, 20, 0.1), "every device is online (polled)")

    events = SseStream(h, "/api/v1/events?heartbeat=1000", token=api.viewer)
    is_eq(events.status, 200, "the event stream is open")
    rid = test_five(api, h, fw_a, fast_ids, events)
    test_rollout_errors(api, fw_a, fast_ids, rid)
    test_jobs(api, rid, fast_ids)
    test_upload(api, h, fw_a, fw_b, fast_ids)
    test_pause_resume_cancel(api, h, fw_a, slow_ids)
    test_canary(api, h, fw_b, bad_ids[0], fast_ids[:2])
    events.close()
    is_eq(h.stop_daemon(), 0, "smpgwd stops cleanly")


def test_five(api, h, fw_a, ids, events):
    """Five devices, test-confirm, to completion; the busy answer on the way."""
    body = {"firmware": fw_a["id"], "devices": ids[:5], "name": "five",
            "strategy": {"mode": "test-confirm", "max_parallel": 5, "backoff": 0.2}}
    st, ro, hdrs = api.post("/api/v1/rollouts", body)
    if not is_eq(st, 201, "POST /rollouts: 201"):
        diag(ro)
        return None
    rid = ro["id"]
    is_eq(hdrs.get("location"), f"/api/v1/rollouts/{rid}", "Location names the rollout")
    ok(ro["state"] == "running" and ro["jobs"]["total"] == 5 and ro["name"] == "five" and
       ro["firmware"] == fw_a["id"] and ro["auto_update"] is None and
       ro["strategy"]["mode"] == "test-confirm" and ro["strategy"]["max_parallel"] == 5 and
       ro["selector"] == {"devices": ids[:5]} and ro["bytes_total"] == 5 * fw_a["size"],
       "the new rollout: running, 5 jobs, its strategy and selector")
    # The device is busy while its job runs; interactive calls still answer.
    is_err(api.post(f"/api/v1/devices/{ids[0]}/images/upload", {"firmware": fw_a["id"]}), 409,
           "job_in_progress", "an upload to a device of a running rollout: 409")
    is_err(api.post("/api/v1/rollouts", {"firmware": fw_a["id"], "devices": [ids[1]]}), 409,
           "job_in_progress", "a second rollout to a busy device: 409")

    view = wait_rollout(h, rid, api.viewer, ("completed", "paused", "canceled", "failed"), 90)
    if not ok(view and view["state"] == "completed", "the rollout completes"):
        diag(view)
    ok(view and view["jobs"]["succeeded"] == 5 and view["jobs"]["total"] == 5 and
       view["finished_at"] and view["bytes_done"] == view["bytes_total"],
       "every job succeeded, every byte sent")
    confirmed = 0
    for d in ids[:5]:
        img = running_image(h, d, api.viewer)
        if img and img.get("hash") == fw_a["image_hash"] and img.get("confirmed") and \
           img.get("version") == fw_a["version"]:
            confirmed += 1
        else:
            diag(f"{d}: {img}")
    is_eq(confirmed, 5, "every device runs the new image, confirmed (asked with ?refresh=true)")

    # What the event stream said about it.
    succeeded, progress = set(), 0

    def seen():
        nonlocal progress
        e = events.next(0.5)
        while e is not None:
            data = e.get("data") if isinstance(e.get("data"), dict) else {}
            if e.get("event") == "job.state" and data.get("rollout") == rid and \
               data.get("to") == "succeeded":
                succeeded.add(data.get("device"))
            if e.get("event") == "rollout.progress" and data.get("rollout") == rid:
                progress += 1
            e = events.next(0.2)
        return len(succeeded) == 5 and progress > 0
    ok(wait_for(seen, 10), "events: job.state to succeeded for each device, rollout.progress")
    diag(f"{progress} rollout.progress events")
    return rid


def test_rollout_errors(api, fw_a, ids, rid):
    h = api.h
    is_err(h.request("GET", "/api/v1/rollouts"), 401, "unauthorized", "GET /rollouts without a token: 401")
    is_err(api.post("/api/v1/rollouts", {"firmware": fw_a["id"], "devices": ids[:1]},
                    token=api.viewer), 403, "forbidden", "POST /rollouts as a viewer: 403")
    is_err(api.post(f"/api/v1/rollouts/{rid}/pause", token=api.viewer), 403, "forbidden",
           "pause as a viewer: 403")
    st, body, _ = api.get("/api/v1/rollouts")
    ok(st == 200 and [r["id"] for r in body["rollouts"]][:1] == [rid],
       "GET /rollouts lists it, newest first")
    st, body, _ = api.get(f"/api/v1/rollouts/{rid}")
    ok(st == 200 and body["id"] == rid and body["state"] == "completed", "GET /rollouts/{id}")
    for path in ("/api/v1/rollouts/999999", "/api/v1/rollouts/abc", "/api/v1/rollouts/0"):
        is_err(api.get(path), 404, "rollout_not_found", f"GET {path}: 404")
    for bad, what in ((None, "no body"), ([], "a list"), ({}, "no firmware"),
                      ({"firmware": fw_a["id"]}, "neither devices nor selector"),
                      ({"firmware": fw_a["id"], "devices": ids[:1], "selector": {}}, "both"),
                      ({"firmware": fw_a["id"], "devices": []}, "no devices"),
                      ({"firmware": fw_a["id"], "devices": ["nope"]}, "an unknown device"),
                      ({"firmware": fw_a["id"], "devices": [ids[0], ids[0]]}, "a device twice"),
                      ({"firmware": fw_a["id"], "devices": ids[:1], "strategy": {"mode": "x"}},
                       "a bad mode"),
                      ({"firmware": fw_a["id"], "devices": ids[:1],
                        "strategy": {"max_parallel": 0}}, "max_parallel 0"),
                      ({"firmware": fw_a["id"], "devices": ids[:1],
                        "strategy": {"window": "25:00-01:00"}}, "a bad window"),
                      ({"firmware": fw_a["id"], "selector": {"labels": ["no-such-label"]}},
                       "a selector that matches nothing"),
                      ({"firmware": fw_a["id"], "devices": ids[:1], "colour": "red"},
                       "an unknown key")):
        res = api.post("/api/v1/rollouts", bad)
        is_err(res, 400, "bad_request", f"POST /rollouts, {what}: 400")
        if res[0] == 400:
            ok(res[1]["error"]["message"], f"... with the engine's sentence")
    is_err(api.post("/api/v1/rollouts", b"{nope", headers={"Content-Type": "application/json"}),
           400, "bad_json", "POST /rollouts, not JSON: 400 bad_json")
    is_err(api.post("/api/v1/rollouts", {"firmware": "0" * 64, "devices": ids[:1]}), 404,
           "firmware_not_found", "POST /rollouts, unknown firmware: 404")
    is_err(api.post(f"/api/v1/rollouts/{rid}/pause"), 409, "rollout_finished",
           "pause a completed rollout: 409")
    is_err(api.post(f"/api/v1/rollouts/{rid}/resume"), 409, "rollout_finished",
           "resume a completed rollout: 409")
    is_err(api.post(f"/api/v1/rollouts/{rid}/cancel"), 409, "rollout_finished",
           "cancel a completed rollout: 409")
    for action in ("pause", "resume", "cancel"):
        is_err(api.post(f"/api/v1/rollouts/999999/{action}"), 404, "rollout_not_found",
               f"{action} an unknown rollout: 404")
    # A selector: the devices that run 1.2.3.4 now (the five) are free again.
    st, body, _ = api.post("/api/v1/rollouts", {"firmware": fw_a["id"],
                                                "selector": {"version": "=1.2.3.4"},
                                                "strategy": {"mode": "upload-only"}})
    ok(st == 201 and body["jobs"]["total"] == 5 and body["selector"] == {"version": "=1.2.3.4"},
       "a selector on the running version takes the five devices")
    if st == 201:
        view = wait_rollout(h, body["id"], api.viewer, ("completed",), 60)
        ok(view and view["jobs"]["succeeded"] == 5,
           "... and each job succeeds at once (the device runs the image already)")


def test_jobs(api, rid, ids):
    jobs = api.jobs(f"rollout={rid}")
    if not ok(jobs is not None and len(jobs) == 5, "GET /jobs?rollout=: the five jobs"):
        return
    ok(sorted(j["device"] for j in jobs) == sorted(ids[:5]) and
       all(j["state"] == "succeeded" and j["rollout"] == rid and j["bytes_done"] == j["bytes_total"]
           for j in jobs), "one job per device, succeeded, every byte done")
    mine = api.jobs(f"device={ids[0]}")
    ok(mine and all(j["device"] == ids[0] for j in mine) and rid in [j["rollout"] for j in mine],
       "GET /jobs?device=")
    both = api.jobs(f"rollout={rid}&device={ids[1]}&state=succeeded")
    ok(both and len(both) == 1 and both[0]["device"] == ids[1], "the three filters together")
    is_eq(api.jobs(f"rollout={rid}&state=failed"), [], "no failed job")
    is_eq(api.jobs("device=no-such-device"), [], "an unknown device: no job")
    is_err(api.get("/api/v1/jobs?state=flying"), 400, "bad_query", "an unknown state: 400")
    is_err(api.get("/api/v1/jobs?rollout=abc"), 400, "bad_query", "rollout=abc: 400")
    is_err(api.h.request("GET", "/api/v1/jobs"), 401, "unauthorized", "GET /jobs without a token: 401")
    job = api.job(jobs[0]["id"])
    if not ok(job and job["id"] == jobs[0]["id"] and job["events"], "GET /jobs/{id}: the job and its events"):
        return
    states = [e["to"] for e in job["events"]]
    ok(job_history_consistent(job), "the history chains: from null, each from the previous to")
    ok(states[0] == "queued" and states[-1] == "succeeded" and
       all(s in states for s in ("connecting", "uploading", "uploaded", "testing", "resetting",
                                 "rebooting", "verifying", "confirming")),
       "every state of test-confirm is in the history")
    diag(" > ".join(states))
    ok(all(e["reason"] for e in job["events"]), "every transition has its reason")
    for path in ("/api/v1/jobs/999999", "/api/v1/jobs/x1"):
        is_err(api.get(path), 404, "job_not_found", f"GET {path}: 404")


def test_upload(api, h, fw_a, fw_b, ids):
    dev = ids[5]
    path = f"/api/v1/devices/{dev}/images/upload"
    is_err(api.post(path, {"firmware": fw_a["id"]}, token=api.viewer), 403, "forbidden",
           "upload as a viewer: 403")
    is_err(api.post("/api/v1/devices/nope/images/upload", {"firmware": fw_a["id"]}), 404,
           "device_not_found", "upload to an unknown device: 404")
    is_err(api.post(path, {"firmware": "f" * 64}), 404, "firmware_not_found",
           "upload of an unknown image: 404")
    for bad, what in ((None, "no body"), ({}, "no firmware"), ({"firmware": 7}, "firmware a number"),
                      ({"firmware": fw_a["id"], "mode": "now"}, "an unknown mode"),
                      ({"firmware": fw_a["id"], "slot": 1}, "an unknown key")):
        is_err(api.post(path, bad), 400, "bad_request", f"upload, {what}: 400")

    st, body, hdrs = api.post(path, {"firmware": fw_a["id"]})
    if not is_eq(st, 202, "POST .../images/upload: 202"):
        diag(body)
        return
    jid = body["job"]
    is_eq(hdrs.get("location"), f"/api/v1/jobs/{jid}", "Location names the job")
    st, ro, _ = api.get(f"/api/v1/rollouts/{body['rollout']}")
    ok(st == 200 and ro["jobs"]["total"] == 1 and ro["strategy"]["mode"] == "upload-only" and
       ro["selector"] == {"devices": [dev]}, "a one-device rollout, upload-only by default")
    job = api.wait_job(jid, FINAL, 60)
    ok(job and job["state"] == "succeeded" and job["device"] == dev, "the job is followed to succeeded")
    st, img, _ = api.get(f"/api/v1/devices/{dev}/images?refresh=true")
    s1 = [e for e in img["value"]["images"] if e.get("slot") == 1] if st == 200 else []
    ok(s1 and s1[0]["hash"] == fw_a["image_hash"] and not s1[0]["pending"],
       "upload-only: the image waits in slot 1, not pending")

    # test-confirm through the same route: the device ends on image B.
    st, body, _ = api.post(path, {"firmware": fw_b["id"], "mode": "test-confirm"})
    ok(st == 202, "upload with mode test-confirm: 202")
    job = api.wait_job(body["job"], FINAL, 60) if st == 202 else None
    ok(job and job["state"] == "succeeded", "... succeeded")
    img = running_image(h, dev, api.viewer)
    ok(img and img["hash"] == fw_b["image_hash"] and img["confirmed"],
       "... the device runs image B, confirmed")


def test_pause_resume_cancel(api, h, fw_a, ids):
    body = {"firmware": fw_a["id"], "devices": ids, "strategy": {"max_parallel": 1}}
    st, ro, _ = api.post("/api/v1/rollouts", body)
    if not is_eq(st, 201, "a rollout over three slow devices"):
        return
    rid = ro["id"]
    st, ro, _ = api.post(f"/api/v1/rollouts/{rid}/pause")
    ok(st == 200 and ro["state"] == "paused", "pause: 200, paused")
    is_err(api.post(f"/api/v1/rollouts/{rid}/pause"), 409, "rollout_state", "pause again: 409")
    first = api.jobs(f"rollout={rid}&device={ids[0]}")
    # The job under way (if it had started) finishes; the others stay queued.
    job = api.wait_job(first[0]["id"], FINAL + ("queued",), 60) if first else None
    ok(job is not None, "the first job ends, or never started")
    others = api.jobs(f"rollout={rid}&state=queued")
    ok(others is not None and {j["device"] for j in others} >= set(ids[1:]),
       "paused: the other jobs stay queued")
    st, ro, _ = api.post(f"/api/v1/rollouts/{rid}/resume")
    ok(st == 200 and ro["state"] == "running", "resume: 200, running")
    is_err(api.post(f"/api/v1/rollouts/{rid}/resume"), 409, "rollout_state", "resume again: 409")

    def moving():
        jobs = api.jobs(f"rollout={rid}") or []
        return any(j["state"] not in ("queued",) + FINAL for j in jobs) or \
            all(j["state"] in FINAL for j in jobs)
    ok(wait_for(moving, 30), "resumed: a job is under way")
    # Interactive calls pass the upload's chunks.
    up = wait_for(lambda: api.jobs(f"rollout={rid}&state=uploading"), 10, 0.05)
    if ok(up, "a job is uploading (3.5 s of flash writes)"):
        st, echo, _ = api.post(f"/api/v1/devices/{up[0]['device']}/os/echo", {"d": "still here"})
        if not ok(st == 200 and echo.get("r") == "still here",
                  "an echo to the device being uploaded to answers"):
            diag(f"{st} {echo}")
        st, body, _ = api.get(f"/api/v1/devices/{up[0]['device']}/os/params")
        ok(st == 200, "... and so does a read of its parameters")
    st, ro, _ = api.post(f"/api/v1/rollouts/{rid}/cancel")
    ok(st == 200 and ro["state"] == "canceled", "cancel: 200, canceled")
    jobs = api.jobs(f"rollout={rid}") or []
    ok(len(jobs) == 3 and all(j["state"] in FINAL for j in jobs) and
       any(j["state"] == "canceled" for j in jobs), "every job is final, the unfinished ones canceled")
    is_err(api.post(f"/api/v1/rollouts/{rid}/cancel"), 409, "rollout_state", "cancel again: 409")
    is_err(api.post(f"/api/v1/rollouts/{rid}/pause"), 409, "rollout_finished",
           "pause a canceled rollout: 409")
    # A device canceled after its test reset runs the new image unconfirmed:
    # it must go back to its old image at the next reset, never stay on it.
    for d in ids:
        # It may be rebooting from the reset of its canceled job.
        img = wait_for(lambda: running_image(h, d, api.viewer), 20, 0.2)
        if img and not img.get("confirmed"):
            diag(f"{d}: runs {img.get('version')} unconfirmed after the cancel: resetting it")
            st, _, _ = api.post(f"/api/v1/devices/{d}/os/reset")
            img = wait_for(lambda: (lambda i: i if i and i.get("confirmed") else None)(
                running_image(h, d, api.viewer)), 20, 0.2)
            ok(img and img.get("hash") != fw_a["image_hash"],
               f"{d}: back on its old image after a reset")
        ok(img and img.get("confirmed"), f"{d}: runs a confirmed image after the cancel")


def test_canary(api, h, fw_b, bad, good):
    body = {"firmware": fw_b["id"], "devices": [bad] + good,
            "strategy": {"canary": 1, "max_parallel": 3, "retries": 0}}
    st, ro, _ = api.post("/api/v1/rollouts", body)
    if not is_eq(st, 201, "a rollout with a canary that crashes at boot"):
        diag(ro)
        return
    rid = ro["id"]
    view = wait_rollout(h, rid, api.viewer, ("paused", "completed"), 60)
    ok(view and view["state"] == "paused" and view["jobs"]["rolled_back"] == 1 and
       view["jobs"]["queued"] == 2, "the canary rolled back; paused; the others never started")
    if view:
        diag(f"paused: {view['reason']}")
    canary = (api.jobs(f"rollout={rid}&device={bad}") or [None])[0]
    ok(canary and canary["canary"] and canary["reason"], "the canary job says why it rolled back")
    img = running_image(h, bad, api.viewer)
    ok(img and img["hash"] != fw_b["image_hash"] and img["confirmed"],
       "the canary device runs its old image, confirmed")
    st, ro, _ = api.post(f"/api/v1/rollouts/{rid}/resume")
    ok(st == 200, "resume opens the gate")
    view = wait_rollout(h, rid, api.viewer, ("completed",), 60)
    ok(view and view["jobs"]["succeeded"] == 2 and view["jobs"]["rolled_back"] == 1,
       "the rest succeed, the rollout completes")


if __name__ == "__main__":
    sys.exit(main())
