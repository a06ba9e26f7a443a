#!/usr/bin/env python3
"""test-api-auto-updates: auto-update rules through the real smpgwd against
smp-sim UDP devices: the routes and their errors (401, 403, 400, 404), a
rule that updates a matching device at once and one discovered later, the
devices it must leave alone (other labels, no downgrade), a new image in
the store that starts the next round, and a device whose image crashes that
is not tried again in a loop. Speaks TAP; every wait is bounded.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import (Harness, add_firmware, add_udp_devices, built, diag, done,  # noqa: E402
                        error_code, is_eq, ok, running_image, sim_udp_addresses, skip_all,
                        top_builddir, wait_for)

MKIMAGE = os.path.join(top_builddir, "tests", "sim", "mkimage")
FINAL = ("completed", "canceled", "failed")


def is_err(res, status, code, name):
    st, body, _ = res
    if not ok(st == status and error_code(body) == code, name):
        diag(f"got {st} {body!r}")
        return False
    return True


def mkimage(h, version, ident):
    path = os.path.join(h.tmp, f"{ident}-{version}.bin")
    subprocess.run([MKIMAGE, "--version", version, "--size", "8192", "--ident", ident, path],
                   check=True, capture_output=True, timeout=30)
    return path


def main():
    if not built() or not os.access(MKIMAGE, os.X_OK):
        return skip_all("smpgwd, smp-sim or mkimage not built")
    h = Harness()
    try:
        run(h)
    finally:
        h.close()
    return done()


class Api:
    def __init__(self, h, viewer, operator):
        self.h, self.viewer, self.operator = h, viewer, operator

    def get(self, path, token=None):
        return self.h.request("GET", path, token=token or self.viewer)

    def call(self, method, path, body=None, token=None, **kw):
        return self.h.request(method, path, body=body, token=token or self.operator, **kw)

    def rollouts_of(self, rule):
        st, body, _ = self.get("/api/v1/rollouts")
        return [r for r in body["rollouts"] if r["auto_update"] == rule] if st == 200 else []

    def jobs_of(self, device):
        st, body, _ = self.get(f"/api/v1/jobs?device={device}")
        return body["jobs"] if st == 200 else []

    def wait_rule(self, rule, count, timeout=60):
        """The rule has count rollouts, all final; returns them (newest first)."""
        last = [[]]

        def check():
            last[0] = self.rollouts_of(rule)
            return len(last[0]) == count and all(r["state"] in FINAL for r in last[0])
        if not wait_for(check, timeout, 0.2):
            diag(f"rule {rule}: {[(r['id'], r['state'], r['jobs']) for r in last[0]]}")
        return last[0]


def run(h):
    sims = h.sim("--udp", "127.0.0.1:0", "--count", "3", "--name-prefix", "sensor-",
                 "--reboot-delay", "200")
    bad = h.sim("--udp", "127.0.0.1:0", "--name-prefix", "bad-", "--fail-boot",
                "--reboot-delay", "200")
    addr = sim_udp_addresses(h, sims, 3)
    bad_addr = sim_udp_addresses(h, bad, 1)
    if not ok(addr and bad_addr, "simulators ready"):
        return
    h.write_config("[smp]\ntimeout = 1s\nretries = 2\n[poll]\ninterval = 1s\n")
    api = Api(h, h.token("dash", "viewer"), h.token("ops", "operator"))
    if not ok(h.start_daemon() is not None and h.port, "smpgwd started"):
        return
    app = add_firmware(h, mkimage(h, "1.2.0", "sensor-app"), api.operator, "sensor")
    old = add_firmware(h, mkimage(h, "1.1.0", "sensor-app"), api.operator, "sensor")
    other = add_firmware(h, mkimage(h, "9.0.0", "other-app"), api.operator, "other")
    if not ok(app and old and other, "three images stored (sensor 1.2.0, 1.1.0; other 9.0.0)"):
        return

    rule = test_routes(api, app, old)
    if not rule:
        return
    test_rule_at_work(api, h, rule, addr, app, old)
    test_new_image(api, h, rule, addr)
    test_no_loop(api, h, rule, bad_addr[0])
    is_eq(h.stop_daemon(), 0, "smpgwd stops cleanly")


def test_routes(api, app, old):
    h = api.h
    is_err(h.request("GET", "/api/v1/auto-updates"), 401, "unauthorized", "GET without a token: 401")
    is_err(api.call("POST", "/api/v1/auto-updates", {}, token=api.viewer), 403, "forbidden",
           "POST as a viewer: 403")
    for bad, what in ((None, "no body"), ([], "a list"), ({"colour": "red"}, "an unknown key"),
                      ({"selector": {"labels": "x"}}, "labels not a list"),
                      ({"selector": {"version": "<2"}}, "a selector key rules do not take"),
                      ({"strategy": {"window": "01:00-02:00"}}, "a window in the strategy"),
                      ({"window": "25:00-26:00"}, "a bad window"),
                      ({"strategy": {"mode": "sideways"}}, "a bad mode"),
                      ({"firmware": app["id"], "image_name": "x"}, "image_name with a firmware"),
                      ({"enabled": "yes"}, "enabled not a boolean")):
        res = api.call("POST", "/api/v1/auto-updates", bad)
        if is_err(res, 400, "bad_request", f"POST, {what}: 400"):
            diag(res[1]["error"]["message"])
    is_err(api.call("POST", "/api/v1/auto-updates", b"{", headers={"Content-Type": "application/json"}),
           400, "bad_json", "POST, not JSON: 400 bad_json")
    is_err(api.call("POST", "/api/v1/auto-updates", {"firmware": "0" * 64}), 404,
           "firmware_not_found", "POST, an unknown image: 404")

    body = {"name": "sensors", "image_name": "sensor",
            "selector": {"labels": ["sensor"], "hardware": "nrf52840dk/*", "transport": "udp"},
            "strategy": {"max_parallel": 4, "backoff": 0.2}}
    st, rule, hdrs = api.call("POST", "/api/v1/auto-updates", body)
    if not is_eq(st, 201, "POST /auto-updates: 201"):
        diag(rule)
        return None
    rid = rule["id"]
    is_eq(hdrs.get("location"), f"/api/v1/auto-updates/{rid}", "Location names the rule")
    ok(rule["name"] == "sensors" and rule["enabled"] and rule["firmware"] is None and
       rule["image_name"] == "sensor" and rule["window"] is None and
       not rule["allow_downgrade"] and rule["selector"] == body["selector"] and
       rule["strategy"] == body["strategy"] and rule["created_at"] > 0,
       "the rule as created")
    ok(rule["target"] and rule["target"]["id"] == app["id"] and rule["target"]["version"] == "1.2.0",
       "its target: the newest image named sensor (1.2.0, not other 9.0.0)")
    st, body, _ = api.get("/api/v1/auto-updates")
    ok(st == 200 and [r["id"] for r in body["auto_updates"]] == [rid], "GET /auto-updates lists it")
    st, body, _ = api.get(f"/api/v1/auto-updates/{rid}")
    ok(st == 200 and body == rule, "GET /auto-updates/{id}")
    for path in ("/api/v1/auto-updates/999", "/api/v1/auto-updates/x"):
        is_err(api.get(path), 404, "auto_update_not_found", f"GET {path}: 404")

    # A second rule to change and delete: disabled, so that it does nothing.
    st, second, _ = api.call("POST", "/api/v1/auto-updates",
                             {"name": "pinned", "firmware": old["id"], "enabled": False,
                              "window": "02:00-04:00"})
    ok(st == 201 and second["firmware"] == old["id"] and second["window"] == "02:00-04:00" and
       second["target"]["id"] == old["id"], "a disabled rule with a fixed image and a window")
    sid = second["id"] if st == 201 else 0
    is_err(api.call("PATCH", f"/api/v1/auto-updates/{sid}", {"name": "x"}, token=api.viewer), 403,
           "forbidden", "PATCH as a viewer: 403")
    st, body, _ = api.call("PATCH", f"/api/v1/auto-updates/{sid}", {"name": "pinned old",
                                                                     "window": None})
    ok(st == 200 and body["name"] == "pinned old" and body["window"] is None and
       body["firmware"] == old["id"] and not body["enabled"] and
       body["updated_at"] >= second["updated_at"], "PATCH: the members given change, the rest stay")
    is_err(api.call("PATCH", f"/api/v1/auto-updates/{sid}", {"strategy": {"retries": "x"}}), 400,
           "bad_request", "PATCH, a bad strategy: 400")
    is_err(api.call("PATCH", f"/api/v1/auto-updates/{sid}", {"firmware": "1" * 64}), 404,
           "firmware_not_found", "PATCH, an unknown image: 404")
    is_err(api.call("PATCH", "/api/v1/auto-updates/999", {"name": "x"}), 404,
           "auto_update_not_found", "PATCH an unknown rule: 404")
    is_err(api.call("PATCH", f"/api/v1/auto-updates/{sid}"), 400, "bad_request",
           "PATCH without a body: 400")
    is_err(api.call("DELETE", f"/api/v1/auto-updates/{sid}", token=api.viewer), 403, "forbidden",
           "DELETE as a viewer: 403")
    st, body, _ = api.call("DELETE", f"/api/v1/auto-updates/{sid}")
    is_eq(st, 204, "DELETE: 204")
    is_err(api.get(f"/api/v1/auto-updates/{sid}"), 404, "auto_update_not_found", "... gone")
    is_err(api.call("DELETE", f"/api/v1/auto-updates/{sid}"), 404, "auto_update_not_found",
           "DELETE again: 404")
    return rid


def test_rule_at_work(api, h, rule, addr, app, old):
    d0, = add_udp_devices(h, addr[:1], api.operator, labels=["sensor"])
    d2, = add_udp_devices(h, addr[2:3], api.operator, labels=["hall"])
    got = api.wait_rule(rule, 1)
    if not ok(len(got) == 1 and got[0]["state"] == "completed" and
              got[0]["selector"] == {"devices": [d0]} and got[0]["firmware"] == app["id"],
              "a matching device: one rollout of the rule's image, completed"):
        return
    ok(got[0]["jobs"]["succeeded"] == 1 and got[0]["strategy"]["upgrade"] is True and
       got[0]["name"] == f"auto-update {rule}: sensors",
       "... the job succeeded; the rollout is named after the rule and sets upgrade")
    img = running_image(h, d0, api.viewer)
    ok(img and img["hash"] == app["image_hash"] and img["confirmed"], "d0 runs 1.2.0, confirmed")

    # Discovered later: registered now, it gets its own rollout.
    d1, = add_udp_devices(h, addr[1:2], api.operator, labels=["sensor", "floor-2"])
    got = api.wait_rule(rule, 2)
    ok(len(got) == 2 and got[0]["selector"] == {"devices": [d1]} and
       got[0]["jobs"]["succeeded"] == 1, "a device registered later gets a rollout of its own")
    img = running_image(h, d1, api.viewer)
    ok(img and img["hash"] == app["image_hash"] and img["confirmed"], "d1 runs 1.2.0, confirmed")
    ok(api.jobs_of(d2) == [], "the hall device (other labels) has no job")

    # A rule with an older image never downgrades... unless it says so.
    st, pin, _ = api.call("POST", "/api/v1/auto-updates",
                          {"name": "old", "firmware": old["id"],
                           "selector": {"labels": ["floor-2"]}})
    ok(st == 201, "a rule with the older 1.1.0 for floor-2")
    # Several poll rounds (1 s) give it every chance to misbehave.
    time.sleep(3)
    is_eq(api.rollouts_of(pin["id"]), [], "no downgrade: no rollout")
    st, body, _ = api.call("PATCH", f"/api/v1/auto-updates/{pin['id']}",
                           {"allow_downgrade": True, "enabled": False})
    ok(st == 200 and body["allow_downgrade"] and not body["enabled"],
       "allow_downgrade set, the rule disabled")
    st, _, _ = api.call("DELETE", f"/api/v1/auto-updates/{pin['id']}")
    is_eq(st, 204, "the older rule deleted")


def test_new_image(api, h, rule, addr):
    """An image added to the store starts the rule again for every device."""
    newer = add_firmware(h, mkimage(h, "1.3.0", "sensor-app"), api.operator, "sensor")
    ok(newer, "sensor 1.3.0 stored")
    st, body, _ = api.get(f"/api/v1/auto-updates/{rule}")
    ok(st == 200 and body["target"]["id"] == newer["id"], "the rule's target is now 1.3.0")
    got = api.wait_rule(rule, 3)
    ok(len(got) == 3 and got[0]["firmware"] == newer["id"] and
       got[0]["jobs"]["total"] == 2 and got[0]["jobs"]["succeeded"] == 2,
       "one rollout takes both sensors to 1.3.0")


def test_no_loop(api, h, rule, bad_addr):
    dev, = add_udp_devices(h, [bad_addr], api.operator, labels=["sensor"])
    got = api.wait_rule(rule, 4)
    ok(len(got) == 4 and got[0]["selector"] == {"devices": [dev]} and
       got[0]["jobs"]["rolled_back"] == 1, "a sensor whose new image crashes: its job rolls back")
    # It keeps reporting its old image every second: no second try.
    time.sleep(4)
    jobs = api.jobs_of(dev)
    ok(len(jobs) == 1 and jobs[0]["state"] == "rolled_back",
       "the rule does not try the same image again")
    img = running_image(h, dev, api.viewer)
    ok(img and img["version"].startswith("1.0.0") and img["confirmed"],
       "the device runs its old image, confirmed")


if __name__ == "__main__":
    sys.exit(main())
