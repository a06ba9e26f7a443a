#!/usr/bin/env python3
"""test-api-device-routes: the device routes of the real smpgwd against
smp-sim: the device list (filters, pagination over 250 devices) and CRUD,
OS, image (a whole DFU: upload through the raw route, test, reset, confirm,
erase), stat, enum, Zephyr basic and raw SMP; over UDP and a serial PTY.
Every route's success and errors: bad JSON and types, missing members, bad
hashes, 401/403 per role, 404 unknown device, 503 offline device, 504 (the
simulator drops everything), 409 (it answers EBUSY), 502 (device errors).
Speaks TAP; every wait is bounded.
"""
import base64
import hashlib
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import (Harness, built, diag, done, is_eq, ok, skip_all,  # noqa: E402
                        top_srcdir, wait_for, wait_line)

IMAGE = os.path.join(top_srcdir, "tests", "data", "images", "hash-only-1.2.3+4.bin")
IMAGE_HASH = "c9da53bf046449a5d7c7e63f8f5ee93dac583efe2bd12524ad64023e3dbe8240"
IMAGE_VERSION = "1.2.3.4"


def closed_udp_port():
    """A UDP port nobody listens on (bound, then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def err_code(body):
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def is_err(res, status, code, name):
    st, body, _ = res
    if not ok(st == status and err_code(body) == code, name):
        diag(f"got {st} {body!r}")
        return False
    return True


class Api:
    def __init__(self, h, viewer, operator, admin):
        self.h, self.viewer, self.operator, self.admin = h, viewer, operator, admin

    def get(self, path, token=None, **kw):
        return self.h.request("GET", path, token=token or self.viewer, **kw)

    def call(self, method, path, body=None, token=None, **kw):
        return self.h.request(method, path, body=body, token=token or self.operator, **kw)

    def dev(self, dev_id, rest=""):
        return f"/api/v1/devices/{dev_id}{rest}"

    def online(self, dev_id, timeout=20):
        def check():
            st, body, _ = self.get(self.dev(dev_id))
            return st == 200 and body.get("online")
        return wait_for(check, timeout, 0.1)

    def raw(self, dev_id, op, group, cmd, payload=None, token=None):
        body = {"op": op, "group": group, "id": cmd}
        if payload is not None:
            body["payload"] = payload
        return self.call("POST", self.dev(dev_id, "/smp"), body, token=token or self.admin)


def b64(b):
    return {"$bytes": base64.b64encode(b).decode()}


def upload_raw(api, dev_id, data, chunk=1024):
    """Uploads an image with image-upload requests sent through the raw route;
    returns the last answer's payload or None."""
    sha = hashlib.sha256(data).digest()
    off, last = 0, None
    for _ in range(len(data) // chunk + 8):
        if off >= len(data):
            break
        part = data[off:off + chunk]
        payload = {"off": off, "data": b64(part)}
        if off == 0:
            payload = {"image": 0, "len": len(data), "off": 0, "sha": b64(sha), "data": b64(part)}
        st, body, _ = api.raw(dev_id, "write", 1, 1, payload)
        if st != 200 or not body["status"]["ok"]:
            diag(f"upload at {off}: {st} {body!r}")
            return None
        last = body["payload"]
        off = last["off"]
    return last


def slot(state, n):
    for e in state["images"]:
        if e["image"] == 0 and e["slot"] == n:
            return e
    return None


def stop_clean(h):
    """Stops smpgwd: a clean exit, and nothing from the sanitizers on its
    stderr (the leak checker runs at exit)."""
    rc = h.stop_daemon()
    err = h.daemon_log() if h.gwd else ""
    bad = [l for l in err.splitlines() if "Sanitizer" in l or "runtime error" in l]
    for line in bad[:20]:
        diag(line)
    if rc != 0:
        diag(f"exit code {rc}; the end of its log:")
        for line in err.splitlines()[-10:]:
            diag(line)
    ok(rc == 0 and not bad, "smpgwd exits cleanly (0, no sanitizer report)")


def main():
    if not built():
        return skip_all("smpgwd or smp-sim not built")
    h = Harness()
    try:
        run(h)
    finally:
        h.close()
    h2 = Harness()
    try:
        run_quiet(h2)
    finally:
        h2.close()
    return done()


def run(h):
    udp = h.sim("--udp", "127.0.0.1:0", "--count", "2", "--name-prefix", "udp-", control=True)
    l0, l1 = h.wait_sim(udp, "READY udp"), h.wait_sim(udp, "READY udp")
    link = os.path.join(h.tmp, "tty-sim0")
    ser = h.sim("--serial", "--pty-link", link, "--name-prefix", "ser-")
    if not ok(l0 and l1 and h.wait_sim(ser, "READY serial"), "simulators ready"):
        return
    addr0, addr1 = l0.split()[2], l1.split()[2]
    h.write_config("[smp]\ntimeout = 1s\nretries = 1\n[poll]\ninterval = 1s\njitter = 10\n"
                   f"[device cfg1]\ntransport = udp\naddress = {addr1}\nlabels = lab,floor-2\n")
    api = Api(h, h.token("dash", "viewer"), h.token("ops", "operator"), h.token("root", "admin"))
    if not ok(h.start_daemon() is not None and h.port, "smpgwd started"):
        return

    # ---- register ----
    st, body, hdrs = api.call("POST", "/api/v1/devices",
                              {"transport": "udp", "address": addr0, "name": "Kitchen sensor",
                               "labels": ["lab", "floor-1"]})
    is_eq(st, 201, "POST /devices (udp): 201")
    d0 = body.get("id") if isinstance(body, dict) else None
    is_eq(hdrs.get("location"), f"/api/v1/devices/{d0}", "Location names the device")
    is_eq((body["transport"], body["address"], body["name"], body["labels"], body["source"]),
          ("udp", addr0, "Kitchen sensor", ["lab", "floor-1"], "api"), "the device as registered")
    st, body, _ = api.call("POST", "/api/v1/devices", {"transport": "serial", "address": link,
                                                       "name": "bench", "baud": 115200})
    is_eq(st, 201, "POST /devices (serial PTY): 201")
    ds = body.get("id") if isinstance(body, dict) else None
    ok(body.get("baud") == 115200 and body.get("identity") == "tty:" + link, "serial baud, identity")
    st, body, _ = api.get("/api/v1/devices?transport=udp&label=floor-2")
    d1 = body["devices"][0]["id"] if st == 200 and body["devices"] else None
    ok(d1 and body["devices"][0]["source"] == "config", "the configured device is listed")
    dead_addr = f"127.0.0.1:{closed_udp_port()}"
    st, body, _ = api.call("POST", "/api/v1/devices", {"transport": "udp", "address": dead_addr})
    dead = body.get("id") if st == 201 else None
    ok(dead, "a device on a closed port registered")
    for d, what in ((d0, "UDP device"), (d1, "configured UDP device"), (ds, "serial device")):
        ok(api.online(d), f"{what} comes online (polled)")

    test_auth(api, d0)
    test_register_errors(api, addr0, addr1, link, h.tmp)
    test_list(api, d0, d1, ds, dead)
    test_get_patch_delete(api, d0, d1)
    test_os(api, d0, ds, udp)
    test_image(api, d0, udp)
    test_stat(api, d0, ds)
    test_enum_zephyr(api, d0, ds)
    test_raw(api, d0)
    test_unreachable(api, h, d1, dead, udp)
    stop_clean(h)


# Every device route: method, path after /api/v1/devices/{id}, a valid body,
# the least role, and whether it asks the device (503 when it is offline).
ROUTES = [
    ("GET", "", None, "viewer", False),
    ("PATCH", "", {"name": "x"}, "operator", False),
    ("DELETE", "", None, "operator", False),
    ("POST", "/os/echo", {"d": "x"}, "operator", True),
    ("GET", "/os/info", None, "viewer", True),
    ("GET", "/os/params", None, "viewer", True),
    ("GET", "/os/tasks", None, "viewer", True),
    ("GET", "/os/mempools", None, "viewer", True),
    ("GET", "/os/datetime", None, "viewer", True),
    ("PUT", "/os/datetime", {"datetime": "2025-01-01T00:00:00"}, "operator", True),
    ("POST", "/os/reset", None, "operator", True),
    ("GET", "/os/bootloader", None, "viewer", True),
    ("GET", "/images", None, "viewer", True),
    ("POST", "/images/test", {"hash": IMAGE_HASH}, "operator", True),
    ("POST", "/images/confirm", None, "operator", True),
    ("POST", "/images/erase", None, "operator", True),
    ("GET", "/images/slots", None, "viewer", True),
    ("GET", "/stats", None, "viewer", True),
    ("GET", "/stats/smp_svr_stats", None, "viewer", True),
    ("GET", "/groups", None, "viewer", True),
    ("POST", "/storage/erase", None, "admin", True),
    ("POST", "/smp", {"op": "read", "group": 0, "id": 6}, "admin", True),
]


def test_auth(api, d0):
    h = api.h
    below = {"operator": [("viewer", api.viewer)],
             "admin": [("viewer", api.viewer), ("operator", api.operator)]}
    best = {"viewer": api.viewer, "operator": api.operator, "admin": api.admin}
    for method, rest, body, role, _ in ROUTES:
        name = f"{method} {{id}}{rest}"
        is_err(h.request(method, api.dev(d0, rest), body=body), 401, "unauthorized",
               f"{name} without a token: 401")
        is_err(h.request(method, api.dev(d0, rest), body=body, token="nope"), 401,
               "unauthorized", f"{name} with an unknown token: 401")
        for rname, tok in below.get(role, []):
            is_err(h.request(method, api.dev(d0, rest), body=body, token=tok), 403,
                   "forbidden", f"{name} as {rname}: 403 (needs {role})")
        is_err(h.request(method, api.dev("no-such-device", rest), body=body, token=best[role]),
               404, "device_not_found", f"{name} of an unknown device: 404")
    is_err(h.request("GET", "/api/v1/devices"), 401, "unauthorized", "list without a token: 401")
    is_err(api.call("POST", "/api/v1/devices", {"transport": "udp", "address": "127.0.0.1:9"},
                    token=api.viewer), 403, "forbidden", "viewer cannot register: 403")


def test_register_errors(api, addr0, addr1, link, tmp):
    p = "/api/v1/devices"
    bad = [
        ({"address": "127.0.0.1:1"}, "transport missing"),
        ({"transport": "ble", "address": "x"}, "BLE is discovered, not registered"),
        ({"transport": 7, "address": "127.0.0.1:1"}, "transport not a string"),
        ({"transport": "udp"}, "address missing"),
        ({"transport": "udp", "address": 12}, "address not a string"),
        ({"transport": "udp", "address": "localhost:1337"}, "a host name"),
        ({"transport": "udp", "address": "127.0.0.1:0"}, "port 0"),
        ({"transport": "udp", "address": "127.0.0.1:70000"}, "port out of range"),
        ({"transport": "udp", "address": "127.0.0.1:1", "baud": 9600}, "baud on UDP"),
        ({"transport": "serial", "address": link, "baud": 0}, "baud 0"),
        ({"transport": "serial", "address": link, "baud": "fast"}, "baud not a number"),
        ({"transport": "serial", "address": "dev/ttyACM0"}, "relative serial path"),
        ({"transport": "udp", "address": "127.0.0.1:2", "labels": "a,b"}, "labels not an array"),
        ({"transport": "udp", "address": "127.0.0.1:2", "labels": ["a,b"]}, "label with a comma"),
        ({"transport": "udp", "address": "127.0.0.1:2", "labels": [""]}, "empty label"),
        ({"transport": "udp", "address": "127.0.0.1:2", "labels": [3]}, "label not a string"),
        ({"transport": "udp", "address": "127.0.0.1:2", "labels": ["a\tb"]}, "label with a tab"),
        ({"transport": "udp", "address": "127.0.0.1:2", "labels": ["x"] * 33}, "33 labels"),
        ({"transport": "udp", "address": "127.0.0.1:2", "name": 5}, "name not a string"),
        ({"transport": "udp", "address": "127.0.0.1:2", "name": "a\nb"}, "name with a newline"),
        ({"transport": "udp", "address": "127.0.0.1:2", "colour": "red"}, "unknown member"),
    ]
    for body, what in bad:
        is_err(api.call("POST", p, body), 400, "bad_request", f"POST /devices, {what}: 400")
    is_err(api.call("POST", p, [1, 2]), 400, "bad_request", "POST /devices, an array: 400")
    is_err(api.call("POST", p, "{\"transport\": "), 400, "bad_json",
           "POST /devices, broken JSON: 400 bad_json")
    is_err(api.call("POST", p), 400, "bad_request", "POST /devices without a body: 400")
    is_err(api.call("POST", p, {"transport": "serial", "address": tmp + "/nope"}), 400,
           "bad_request", "a serial port that does not exist: 400")
    plain = os.path.join(tmp, "not-a-tty")
    open(plain, "w").close()
    is_err(api.call("POST", p, {"transport": "serial", "address": plain}), 400, "bad_request",
           "a serial path that is not a terminal: 400")
    st, body, _ = api.call("POST", p, {"transport": "udp", "address": addr0})
    ok(st == 409 and err_code(body) == "device_exists" and "udp-127-0-0-1" in
       body["error"]["message"], "registering an address again: 409 device_exists naming it")
    is_err(api.call("POST", p, {"transport": "udp", "address": addr1}), 409, "device_exists",
           "registering the configured device's address: 409")


def test_list(api, d0, d1, ds, dead):
    st, body, _ = api.get("/api/v1/devices")
    ids = [d["id"] for d in body["devices"]] if st == 200 else []
    is_eq(sorted(ids), sorted([d0, d1, ds, dead]), "GET /devices lists every device")
    ok(ids == sorted(ids), "in id order")
    is_eq((body.get("total"), body.get("next_cursor")), (4, None), "total 4, no next page")
    dev = {d["id"]: d for d in body.get("devices", [])}
    keys = {"id", "identity", "name", "transport", "labels", "address", "source", "online",
            "last_seen", "rssi", "baud", "summary"}
    ok(all(keys <= set(d) for d in dev.values()), "each device has every member")
    ok(all("reported" not in d for d in dev.values()), "the list leaves the sections out")
    # The summary comes from the poller's image_state: wait until it was read.
    ok(wait_for(lambda: (api.get(api.dev(d0))[1].get("summary", {}).get("version") ==
                         "1.0.0"), 10), "summary: version of the running image")
    s = api.get(api.dev(d0))[1]["summary"]
    ok(isinstance(s.get("hash"), str) and len(s["hash"]) == 64 and
       isinstance(s.get("age_ms"), int) and s["age_ms"] >= 0, "summary: hash and age_ms")
    ok(isinstance(dev.get(d0, {}).get("last_seen"), int), "last_seen in ms")
    is_eq(dev.get(dead, {}).get("online"), False, "the device on a closed port is offline")
    is_eq(dev.get(dead, {}).get("summary"), {"version": None, "hash": None, "info": None,
                                             "age_ms": None}, "an empty summary is all nulls")
    is_eq(dev.get(dead, {}).get("rssi", 0), None, "rssi null when unknown")

    def q(query):
        st, body, _ = api.get("/api/v1/devices?" + query)
        if st != 200:
            diag(f"{query}: {st} {body!r}")
            return None
        return sorted(d["id"] for d in body["devices"]), body["total"]

    is_eq(q("transport=serial"), ([ds], 1), "filter transport=serial")
    is_eq(q("transport=udp"), (sorted([d0, d1, dead]), 3), "filter transport=udp")
    is_eq(q("state=offline"), ([dead], 1), "filter state=offline")
    is_eq(q("state=online"), (sorted([d0, d1, ds]), 3), "filter state=online")
    is_eq(q("label=lab"), (sorted([d0, d1]), 2), "filter label=lab")
    is_eq(q("label=lab,floor-1"), ([d0], 1), "filter label=lab,floor-1: all must match")
    is_eq(q("label=lab,%20floor-2"), ([d1], 1), "spaces around labels ignored")
    is_eq(q("label=nowhere"), ([], 0), "an unknown label matches nothing")
    is_eq(q("name=KITCHEN"), ([d0], 1), "name: case-insensitive substring")
    is_eq(q("name=kit*"), ([d0], 1), "name: a glob over the whole name")
    is_eq(q("name=sensor*"), ([], 0), "a glob is anchored")
    is_eq(q("name=*sensor"), ([d0], 1), "name: glob *sensor")
    is_eq(q("name=b%3Fnch"), ([ds], 1), "name: glob with ?")
    is_eq(q("transport=udp&state=online&label=lab"), (sorted([d0, d1]), 2), "filters combine")
    st, body, _ = api.get("/api/v1/devices?limit=2")
    ok(st == 200 and len(body["devices"]) == 2 and body["total"] == 4 and
       body["next_cursor"] == body["devices"][1]["id"], "limit=2: first page, a cursor")
    st2, body2, _ = api.get("/api/v1/devices?limit=2&cursor=" + body["next_cursor"])
    ok(st2 == 200 and len(body2["devices"]) == 2 and body2["next_cursor"] is None and
       [d["id"] for d in body["devices"] + body2["devices"]] == sorted([d0, d1, ds, dead]),
       "limit=2: second and last page")
    for bad in ("limit=0", "limit=1001", "limit=abc", "limit=-1", "transport=can",
                "state=sleeping", "name=" + "x" * 300, "cursor=" + "x" * 200):
        is_err(api.get("/api/v1/devices?" + bad), 400, "bad_query", f"devices?{bad}: 400")


def test_get_patch_delete(api, d0, d1):
    st, body, _ = api.get(api.dev(d0))
    ok(st == 200 and isinstance(body.get("reported"), dict), "GET /devices/{id}: reported")
    rep = body.get("reported", {})
    ok("image_state" in rep and {"value", "at", "age_ms"} <= set(rep["image_state"]),
       "each section has value, at, age_ms")
    ok(body.get("busy") is False and isinstance(body.get("link"), bool), "detail: link and busy")
    is_err(api.get(api.dev("nope")), 404, "device_not_found", "GET an unknown device: 404")

    st, body, _ = api.call("PATCH", api.dev(d0), {"name": "Pantry sensor"})
    is_eq((st, body.get("name"), body.get("labels")), (200, "Pantry sensor", ["lab", "floor-1"]),
          "PATCH name: 200, labels kept")
    st, body, _ = api.call("PATCH", api.dev(d0), {"labels": ["lab", "floor-1", "lab", "pantry"]})
    is_eq((st, body.get("labels")), (200, ["lab", "floor-1", "pantry"]),
          "PATCH labels: duplicates kept once")
    is_err(api.call("PATCH", api.dev(d0), {"name": "Ignored", "labels": ["a,b"]}), 400,
           "bad_request", "PATCH with a bad label: 400")
    is_eq(api.get(api.dev(d0))[1].get("name"), "Pantry sensor",
          "a refused PATCH changes nothing (the name too)")
    is_err(api.call("PATCH", api.dev(d0), {"name": ["x"]}), 400, "bad_request",
           "PATCH name not a string: 400")
    is_err(api.call("PATCH", api.dev(d0), {"id": "new"}), 400, "bad_request",
           "PATCH an unknown member: 400")
    is_err(api.call("PATCH", api.dev(d0), "[]"), 400, "bad_request", "PATCH an array: 400")
    is_err(api.call("PATCH", api.dev("nope"), {"name": "x"}), 404, "device_not_found",
           "PATCH an unknown device: 404")
    is_eq(api.call("PATCH", api.dev(d0), {})[0], 200, "an empty PATCH: 200")
    st, body, _ = api.get("/api/v1/devices?name=pantry")
    is_eq([d["id"] for d in body.get("devices", [])], [d0], "the new name is listed")

    is_err(api.call("DELETE", api.dev(d1)), 409, "device_configured",
           "DELETE a configured device: 409")
    st, body, _ = api.call("POST", "/api/v1/devices", {"transport": "udp",
                                                       "address": "127.0.0.1:9"})
    tmp_id = body.get("id") if st == 201 else "none"
    is_eq(api.call("DELETE", api.dev(tmp_id))[0], 204, "DELETE a registered device: 204")
    is_err(api.get(api.dev(tmp_id)), 404, "device_not_found", "it is gone")
    is_err(api.call("DELETE", api.dev(tmp_id)), 404, "device_not_found", "DELETE again: 404")
    is_eq(api.call("POST", "/api/v1/devices", {"transport": "udp", "address": "127.0.0.1:9"})[0],
          201, "its address can be registered again")
    api.call("DELETE", api.dev(tmp_id))


def test_os(api, d0, ds, udp):
    for d, link in ((d0, "udp"), (ds, "serial")):
        st, body, _ = api.call("POST", api.dev(d, "/os/echo"), {"d": "hello"})
        is_eq((st, body), (200, {"r": "hello"}), f"echo over {link}")
    is_eq(api.call("POST", api.dev(d0, "/os/echo"), {"d": ""})[:2], (200, {"r": ""}),
          "echo of the empty string")
    is_eq(api.call("POST", api.dev(d0, "/os/echo"), {"d": "h\u00e9llo \u2603"})[:2],
          (200, {"r": "h\u00e9llo \u2603"}), "echo of UTF-8 text")
    for body, what in (({}, "d missing"), ({"d": 5}, "d not a string"), ({"d": None}, "d null"),
                       ({"d": "a\u0007b"}, "d with BEL"), ({"d": "x", "e": 1}, "unknown member"),
                       ({"d": "x" * 4097}, "d over 4096 bytes")):
        is_err(api.call("POST", api.dev(d0, "/os/echo"), body), 400, "bad_request",
               f"echo, {what}: 400")
    is_err(api.call("POST", api.dev(d0, "/os/echo"), "{oops"), 400, "bad_json",
           "echo, broken JSON: 400 bad_json")
    is_err(api.call("POST", api.dev(d0, "/os/echo"), '{"d": "a\\u0000b"}'), 400, "bad_json",
           "echo, d with an escaped NUL: 400 (the server takes no NUL in JSON)")
    is_err(api.call("POST", api.dev(d0, "/os/echo"), {"d": "x" * 3000}), 413, "too_large",
           "echo larger than the device's buffer: 413 before it is sent")

    st, body, _ = api.get(api.dev(d0, "/os/info"))
    ok(st == 200 and body.get("output", "").startswith("Zephyr udp-0 "), "info, format a")
    rep = api.get(api.dev(d0))[1]["reported"].get("info", {})
    ok(rep.get("value") == body and rep.get("age_ms", 1e9) < 5000,
       "info \"a\" is stored as the info section")
    is_eq(api.get(api.dev(d0, "/os/info?format=s"))[:2], (200, {"output": "Zephyr"}),
          "info, format s")
    is_eq(api.get(api.dev(ds, "/os/info?format=n"))[:2], (200, {"output": "ser-0"}),
          "info over serial, format n")
    st, body, _ = api.get(api.dev(d0, "/os/info?format=X"))
    ok(st == 502 and err_code(body) == "device_error" and body["error"]["smp"]["group"] == 0 and
       body["error"]["smp"]["rc"] == 2, "info, an unknown format character: 502 with smp")
    is_err(api.get(api.dev(d0, "/os/info?format=" + "a" * 33)), 400, "bad_query",
           "info, format over 32 bytes: 400")
    is_err(api.get(api.dev(d0, "/os/info?format=a%0A")), 400, "bad_query",
           "info, format with a newline: 400")

    is_eq(api.get(api.dev(d0, "/os/params"))[:2], (200, {"buf_size": 2048, "buf_count": 4}),
          "params")
    st, body, _ = api.get(api.dev(d0, "/os/tasks"))
    tasks = body.get("tasks", []) if st == 200 else []
    ok(tasks and all({"name", "prio", "tid", "state"} <= set(t) for t in tasks),
       "tasks: name, prio, tid, state each")
    st, body, _ = api.get(api.dev(d0, "/os/mempools"))
    pools = body.get("pools", []) if st == 200 else []
    ok(pools and pools[0]["name"] == "smp_buf" and pools[0]["blksiz"] == 2048 and
       pools[0]["nblks"] == 4 and "nfree" in pools[0], "mempools: smp_buf")

    st, body, _ = api.get(api.dev(d0, "/os/datetime"))
    ok(st == 502 and err_code(body) == "device_error" and body["error"]["smp"]["group"] == 0,
       "datetime of an unset RTC: 502 with smp")
    st, body, _ = api.call("PUT", api.dev(d0, "/os/datetime"),
                           {"datetime": "2025-01-31T12:30:00+02:00"})
    is_eq((st, body), (200, {"datetime": "2025-01-31T10:30:00"}),
          "PUT datetime with a zone: converted to UTC")
    st, body, _ = api.get(api.dev(d0, "/os/datetime"))
    ok(st == 200 and body.get("datetime", "").startswith("2025-01-31T10:3"),
       "GET datetime reads it back")
    is_eq(api.call("PUT", api.dev(d0, "/os/datetime"), {"datetime": "2024-02-29T23:59:59.5Z"})[:2],
          (200, {"datetime": "2024-02-29T23:59:59.500"}), "leap day, fraction, Z")
    is_eq(api.call("PUT", api.dev(d0, "/os/datetime"), {"datetime": "2025-01-01 00:30:00-0100"})
          [:2], (200, {"datetime": "2025-01-01T01:30:00"}), "space separator, -HHMM zone")
    for bad in ("2025-02-30T00:00:00", "2023-02-29T00:00:00", "2025-13-01T00:00:00",
                "2025-01-01T24:00:00", "2025-01-01", "yesterday", "2025-01-01T00:00:00+25:00",
                "1969-12-31T23:59:59Z", "2025-01-01T00:00:00.Z", 20250101, ""):
        is_err(api.call("PUT", api.dev(d0, "/os/datetime"), {"datetime": bad}), 400,
               "bad_request", f"PUT datetime {bad!r}: 400")
    is_err(api.call("PUT", api.dev(d0, "/os/datetime"), {}), 400, "bad_request",
           "PUT datetime without it: 400")

    is_eq(api.get(api.dev(d0, "/os/bootloader"))[:2], (200, {"bootloader": "MCUboot"}),
          "bootloader")
    is_eq(api.get(api.dev(d0, "/os/bootloader?query=mode"))[:2],
          (200, {"mode": 3, "mode_name": "swap-move", "can_revert": True}), "bootloader mode")
    st, body, _ = api.get(api.dev(d0, "/os/bootloader?query=nothing"))
    ok(st in (400, 502) and err_code(body) in ("device_refused", "device_error") and
       "smp" in body["error"], "bootloader, an unknown query: the device's refusal")

    # Reset: 202, the device reboots (the simulator says so) and comes back.
    for body, what in (({"force": "yes"}, "force not a boolean"),
                       ({"boot_mode": 256}, "boot_mode 256"), ({"boot_mode": -1}, "boot_mode -1"),
                       ({"boot_mode": 1.5}, "boot_mode not an integer"),
                       ({"hard": True}, "unknown member")):
        is_err(api.call("POST", api.dev(d0, "/os/reset"), body), 400, "bad_request",
               f"reset, {what}: 400")
    st, body, _ = api.call("POST", api.dev(ds, "/os/reset"))
    ok(st == 202 and isinstance(body.get("answered"), bool), "reset over serial without a body: 202")
    is_eq(api.call("POST", api.dev(d0, "/os/reset"), {"force": True})[:2],
          (202, {"answered": True}), "reset over UDP with force: 202")
    ok(wait_line(udp, "RESET id=udp-0 reason=request", 10), "the simulator reset")
    ok(wait_line(udp, "BOOT id=udp-0", 10), "... and booted")
    ok(api.online(d0) and api.online(ds), "both devices answer again")


def test_image(api, d0, udp):
    st, body, _ = api.get(api.dev(d0, "/images"))
    ok(st == 200 and {"value", "at", "age_ms"} <= set(body) and
       slot(body["value"], 0)["active"], "GET images: the cached state, slot 0 active")
    st, body, _ = api.get(api.dev(d0, "/images?refresh=true"))
    ok(st == 200 and body["age_ms"] < 1000 and slot(body["value"], 1) is None,
       "GET images?refresh=true: fresh, slot 1 empty")
    is_err(api.get(api.dev(d0, "/images?refresh=maybe")), 400, "bad_query",
           "images?refresh=maybe: 400")

    # An image into slot 1 through the raw route, as the upload commands go.
    with open(IMAGE, "rb") as f:
        data = f.read()
    last = upload_raw(api, d0, data)
    ok(last is not None and last.get("off") == len(data) and last.get("match") is True,
       "image uploaded with raw image-upload requests, match")
    st, body, _ = api.get(api.dev(d0, "/images?refresh=true"))
    s1 = slot(body["value"], 1) if st == 200 else None
    ok(s1 and s1["version"] == IMAGE_VERSION and s1["hash"] == IMAGE_HASH and
       not s1["pending"], "?refresh=true shows the new image in slot 1")

    for body, what in (({}, "hash missing"), ({"hash": IMAGE_HASH[:63]}, "63 hex digits"),
                       ({"hash": IMAGE_HASH + "0"}, "65 hex digits"),
                       ({"hash": "g" * 64}, "not hex"), ({"hash": 5}, "not a string"),
                       ({"hash": IMAGE_HASH, "confirm": True}, "unknown member")):
        is_err(api.call("POST", api.dev(d0, "/images/test"), body), 400, "bad_request",
               f"test, {what}: 400")
    is_err(api.call("POST", api.dev(d0, "/images/test")), 400, "bad_request",
           "test without a body: 400")
    st, body, _ = api.call("POST", api.dev(d0, "/images/test"), {"hash": "1" * 64})
    ok(st == 404 and err_code(body) == "not_found" and body["error"]["smp"]["group"] == 1,
       "test of an unknown hash: 404 with the IMG error")
    st, body, _ = api.call("POST", api.dev(d0, "/images/test"), {"hash": IMAGE_HASH.upper()})
    s1 = slot(body, 1) if st == 200 else None
    ok(s1 and s1["pending"] and not s1["confirmed"], "test: 200, slot 1 pending (hash in capitals)")
    st, body, _ = api.get(api.dev(d0, "/images"))
    ok(st == 200 and slot(body["value"], 1)["pending"] and body["age_ms"] < 2000,
       "the cache holds the state test answered")
    st, body, _ = api.call("POST", api.dev(d0, "/images/erase"), {"slot": 1})
    ok(st == 409 and err_code(body) == "device_busy", "erase of the pending slot: 409")

    is_eq(api.call("POST", api.dev(d0, "/os/reset"))[0], 202, "reset into the test image")
    ok(wait_line(udp, "BOOT id=udp-0 version=" + IMAGE_VERSION, 15), "the simulator swapped")

    def running_test_image():
        st, body, _ = api.get(api.dev(d0, "/images?refresh=true"))
        s0 = slot(body["value"], 0) if st == 200 else None
        return s0 if s0 and s0["version"] == IMAGE_VERSION else None
    s0 = wait_for(running_test_image, 20, 0.2)
    ok(s0 and s0["active"] and not s0["confirmed"], "?refresh=true: the test image runs, unconfirmed")
    st, body, _ = api.call("POST", api.dev(d0, "/images/erase"))
    ok(st == 409 and err_code(body) == "device_busy" and body["error"]["smp"]["group"] == 1,
       "erase of the revert target: 409 with the IMG error")
    is_err(api.call("POST", api.dev(d0, "/images/confirm"), {"hash": "zz"}), 400, "bad_request",
           "confirm, a bad hash: 400")
    is_err(api.call("POST", api.dev(d0, "/images/confirm"), [1]), 400, "bad_request",
           "confirm, an array: 400")
    st, body, _ = api.call("POST", api.dev(d0, "/images/confirm"))
    s0 = slot(body, 0) if st == 200 else None
    ok(s0 and s0["version"] == IMAGE_VERSION and s0["confirmed"],
       "confirm without a body: the running image confirmed")
    st, body, _ = api.get(api.dev(d0, "/images"))
    ok(st == 200 and slot(body["value"], 0)["confirmed"], "the cache holds the confirmed state")
    st, body, _ = api.get(api.dev(d0))
    is_eq((body.get("summary", {}).get("version"), body.get("summary", {}).get("hash")),
          (IMAGE_VERSION, IMAGE_HASH), "the device summary follows")

    for body, what in (({"slot": -1}, "slot -1"), ({"slot": 256}, "slot 256"),
                       ({"slot": "1"}, "slot not a number"), ({"all": True}, "unknown member")):
        is_err(api.call("POST", api.dev(d0, "/images/erase"), body), 400, "bad_request",
               f"erase, {what}: 400")
    st, body, _ = api.call("POST", api.dev(d0, "/images/erase"), {"slot": 1})
    ok(st == 200 and body.get("slot") == 1 and body.get("image_state") and
       slot(body["image_state"], 1) is None, "erase slot 1: 200, the state read again")
    st, body, _ = api.get(api.dev(d0, "/images"))
    ok(st == 200 and slot(body["value"], 1) is None, "the cache holds the state after erase")
    is_eq(api.call("POST", api.dev(d0, "/images/erase"))[0], 200, "erase an empty slot: 200")

    st, body, _ = api.get(api.dev(d0, "/images/slots"))
    sl = body.get("images", [{}])[0].get("slots", []) if st == 200 else []
    ok(len(sl) == 2 and sl[0]["slot"] == 0 and sl[0]["size"] == 0x69000 and
       sl[1].get("upload_image_id") == 0 and "upload_image_id" not in sl[0],
       "slots: two slots, sizes, upload_image_id on slot 1")


def test_stat(api, d0, ds):
    st, body, _ = api.get(api.dev(d0, "/stats?refresh=true"))
    groups = body.get("value", {}) if st == 200 else {}
    ok(groups and all(isinstance(v, dict) for v in groups.values()) and body["age_ms"] < 2000,
       "GET stats?refresh=true: every group, fresh")
    name = sorted(groups)[0] if groups else "none"
    st, body2, _ = api.get(api.dev(d0, "/stats"))
    ok(st == 200 and body2["value"].keys() == groups.keys() and body2["at"] >= body["at"],
       "GET stats: the stored groups")
    st, body, _ = api.get(api.dev(d0, f"/stats/{name}"))
    ok(st == 200 and body["value"].keys() == groups[name].keys(), "GET stats/{group} from the cache")
    st, body, _ = api.get(api.dev(d0, f"/stats/{name}?refresh=true"))
    ok(st == 200 and body["value"].keys() == groups[name].keys() and body["age_ms"] == 0,
       "GET stats/{group}?refresh=true asks the device")
    st, body, _ = api.get(api.dev(ds, f"/stats/{name}?refresh=true"))
    ok(st == 200 and body["value"].keys() == groups[name].keys(), "one group over serial")
    st, body, _ = api.get(api.dev(d0, "/stats/nope"))
    ok(st == 502 and err_code(body) == "device_error" and "smp" in body["error"],
       "an unknown group: the device's error (Zephyr 4.1: group 63 rc 3)")
    is_err(api.get(api.dev(d0, "/stats/" + "x" * 65)), 400, "bad_request", "a name over 64: 400")
    is_err(api.get(api.dev(d0, "/stats?refresh=2")), 400, "bad_query", "stats?refresh=2: 400")


def test_enum_zephyr(api, d0, ds):
    for d, link in ((d0, "udp"), (ds, "serial")):
        st, body, _ = api.get(api.dev(d, "/groups"))
        gs = {g["group"]: g for g in body.get("groups", [])} if st == 200 else {}
        ok(body.get("source") in ("details", "list") and {0, 1, 2, 3, 8, 9, 10, 63} <= set(gs) and
           gs[1]["standard"] == "image" and body["count"] == len(gs), f"groups over {link}")
    st, body, _ = api.call("POST", api.dev(d0, "/storage/erase"), token=api.admin)
    is_eq((st, body), (200, {"erased": True}), "storage erase as admin: 200")


def test_raw(api, d0):
    st, body, _ = api.raw(d0, "read", 0, 6)
    ok(st == 200 and body["payload"] == {"buf_size": 2048, "buf_count": 4} and
       body["header"]["op"] == 1 and body["header"]["group"] == 0 and body["header"]["id"] == 6 and
       body["status"]["ok"], "raw params: header, payload, status")
    st, body, _ = api.call("POST", api.dev(d0, "/smp"),
                           {"op": "read", "group": 0, "id": 6, "payload": None}, token=api.admin)
    ok(st == 200 and body["payload"].get("buf_size") == 2048, "raw with payload null: the empty map")
    st, body, _ = api.raw(d0, 2, 0, 0, {"d": "raw"})
    is_eq((st, body.get("payload")), (200, {"r": "raw"}), "raw echo with op 2")
    st, body, _ = api.raw(d0, "read", 0, 7, {"format": "X"})
    ok(st == 200 and body["status"]["ok"] is False and body["status"]["kind"] == "err" and
       body["status"]["group"] == 0 and body["status"]["rc"] == 2,
       "raw: a device error is data with 200")
    st, body, _ = api.raw(d0, "read", 77, 0)
    ok(st == 200 and body["status"]["kind"] == "rc" and body["status"]["rc"] == 8 and
       body["status"]["name"] == "ENOTSUP", "raw: a user group the device lacks: ENOTSUP as data")
    st, body, _ = api.raw(d0, "write", 77, 0, [1, "two", {"$bytes": "AAE="}])
    ok(st == 200 and body["status"]["rc"] == 8, "raw: a user group takes any payload (an array)")
    st, body, _ = api.raw(d0, "read", 8, 3)
    ok(st == 200 and body["status"]["ok"] and "types" in json.dumps(body["payload"]),
       "raw: FS supported hash types")
    for body, what in (({"group": 0, "id": 0}, "op missing"),
                       ({"op": "delete", "group": 0, "id": 0}, "op unknown"),
                       ({"op": 1, "group": 0, "id": 0}, "op 1 (a response)"),
                       ({"op": "read", "id": 0}, "group missing"),
                       ({"op": "read", "group": 65536, "id": 0}, "group 65536"),
                       ({"op": "read", "group": 0, "id": 256}, "id 256"),
                       ({"op": "read", "group": 0, "id": "6"}, "id not a number"),
                       ({"op": "read", "group": 0, "id": 6, "payload": [1]},
                        "an array to group 0"),
                       ({"op": "read", "group": 0, "id": 6, "payload": {"$bytes": "%%"}},
                        "bad $bytes"),
                       ({"op": "read", "group": 0, "id": 6, "seq": 1}, "unknown member")):
        is_err(api.call("POST", api.dev(d0, "/smp"), body, token=api.admin), 400, "bad_request",
               f"raw, {what}: 400")
    st, body, _ = api.raw(d0, "write", 0, 0, {"d": "x" * 70000})
    ok(st == 413 and err_code(body) == "too_large", "raw larger than an SMP packet: 413")


def test_unreachable(api, h, d1, dead, udp):
    best = {"viewer": api.viewer, "operator": api.operator, "admin": api.admin}
    for method, rest, body, role, asks in ROUTES:
        if asks:
            is_err(h.request(method, api.dev(dead, rest), body=body, token=best[role]), 503,
                   "device_offline", f"{method} {{id}}{rest} of an offline device: 503")
    is_err(api.get(api.dev(dead, "/stats?refresh=true")), 503, "device_offline",
           "stats?refresh=true of an offline device: 503")

    ok((h.sim_command(udp, "set busy-rate 1") or "").startswith("OK"),
       "simulator: every request answered EBUSY")
    st, body, _ = api.call("POST", api.dev(d1, "/os/echo"), {"d": "x"})
    ok(st == 409 and err_code(body) == "device_busy" and body["error"]["smp"]["rc"] == 10,
       "EBUSY: 409 device_busy with smp rc 10")
    st, body, _ = api.get(api.dev(d1, "/groups"))
    ok(st == 409 and err_code(body) == "device_busy", "EBUSY through a sequence: 409")
    st, body, _ = api.raw(d1, "read", 0, 6)
    ok(st == 200 and body["status"]["rc"] == 10, "EBUSY through raw: data")
    h.sim_command(udp, "set busy-rate 0")

    # A client that goes away mid-call: the daemon carries on.
    h.sim_command(udp, "set latency 600")
    s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    req = json.dumps({"d": "gone"}).encode()
    s.sendall(b"POST " + api.dev(d1, "/os/echo").encode() + b" HTTP/1.1\r\nHost: x\r\n" +
              f"Authorization: Bearer {api.operator}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(req)}\r\n\r\n".encode() + req)
    s.close()
    st, body, _ = api.call("POST", api.dev(d1, "/os/echo"), {"d": "still"})
    is_eq((st, body), (200, {"r": "still"}), "after a client went away mid-call, calls work")
    h.sim_command(udp, "set latency 0")



def run_quiet(h):
    """A daemon that polls each device once (to bring it online) and then
    leaves it alone, so that nothing but the API talks to it: a device that
    stops answering gives 504, never a poll declaring it offline first. Then
    250 devices registered through the API: pages of 100 cover each once."""
    udp = h.sim("--udp", "127.0.0.1:0", "--name-prefix", "quiet-", control=True)
    line = h.wait_sim(udp, "READY udp")
    h.write_config("[smp]\ntimeout = 1s\nretries = 1\n[poll]\ninterval = 1h\njitter = 0\n")
    api = Api(h, h.token("dash", "viewer"), h.token("ops", "operator"), None)
    if not ok(line and h.start_daemon() is not None and h.port,
              "second smpgwd started (one poll per device)"):
        return
    st, body, _ = api.call("POST", "/api/v1/devices",
                           {"transport": "udp", "address": line.split()[2]})
    dq = body.get("id") if st == 201 else "none"
    ok(api.online(dq), "the device comes online after its first poll")
    is_eq(api.call("POST", api.dev(dq, "/os/echo"), {"d": "x"})[:2], (200, {"r": "x"}), "echo")
    ok((h.sim_command(udp, "set drop-rate 1") or "").startswith("OK"),
       "simulator: drops everything")
    t0 = time.monotonic()
    is_err(api.call("POST", api.dev(dq, "/os/echo"), {"d": "x"}), 504, "device_timeout",
           "no answer: 504 device_timeout")
    ok(time.monotonic() - t0 < 10, "within the [smp] timeout and its retry")
    is_err(api.get(api.dev(dq, "/stats?refresh=true")), 504, "device_timeout",
           "no answer in a sequence: 504")
    is_err(api.call("POST", api.dev(dq, "/os/reset")), 504, "device_timeout",
           "reset without an answer over UDP: 504")
    is_err(api.raw(dq, "read", 0, 6, token=api.operator), 403, "forbidden",
           "raw needs admin here too")
    h.sim_command(udp, "set drop-rate 0")
    is_eq(api.call("POST", api.dev(dq, "/os/echo"), {"d": "y"})[:2], (200, {"r": "y"}),
          "answers again")

    # A device with a rollout job that is not final cannot be deleted.
    with open(IMAGE, "rb") as f:
        st, fw, _ = api.call("POST", "/api/v1/firmware", f.read(),
                             headers={"Content-Type": "application/octet-stream"})
    ok(st in (200, 201) and isinstance(fw, dict) and fw.get("image_hash") == IMAGE_HASH,
       "firmware stored")
    h.sim_command(udp, "set latency 200")
    st, started, _ = api.call("POST", api.dev(dq, "/images/upload"),
                              {"firmware": fw.get("id") if isinstance(fw, dict) else ""})
    ok(st == 202 and isinstance(started, dict) and "rollout" in started, "an upload job started")
    st, body, _ = api.get(api.dev(dq))
    is_eq((st, body.get("busy")), (200, True), "the device shows busy")
    is_err(api.call("DELETE", api.dev(dq)), 409, "device_busy",
           "DELETE a device with an active job: 409 device_busy")
    rid = started.get("rollout") if isinstance(started, dict) else 0
    is_eq(api.call("POST", f"/api/v1/rollouts/{rid}/cancel")[0], 200, "the rollout canceled")
    ok(wait_for(lambda: api.get(api.dev(dq))[1].get("busy") is False, 10),
       "the device is not busy any more")
    h.sim_command(udp, "set latency 0")
    is_eq(api.call("DELETE", api.dev(dq))[0], 204, "then DELETE: 204")
    want = []
    failures = 0
    for i in range(250):
        body = {"transport": "udp", "address": f"127.0.0.1:{20000 + i}"}
        if i % 2:
            body["labels"] = ["odd"]
        st, b, _ = api.call("POST", "/api/v1/devices", body)
        if st != 201:
            failures += 1
            continue
        want.append(b["id"])
    is_eq(failures, 0, "250 devices registered")
    seen, pages, cursor = [], [], None
    for _ in range(10):
        path = "/api/v1/devices?limit=100" + (f"&cursor={cursor}" if cursor else "")
        st, body, _ = api.get(path)
        if st != 200:
            diag(f"{path}: {st} {body!r}")
            break
        pages.append((len(body["devices"]), body["total"]))
        seen += [d["id"] for d in body["devices"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    is_eq(pages, [(100, 250), (100, 250), (50, 250)], "limit=100: three pages, total 250 each")
    is_eq(seen, sorted(want), "the pages cover every id once, in order")
    st, body, _ = api.get("/api/v1/devices?limit=1000")
    is_eq((len(body.get("devices", [])), body.get("next_cursor")), (250, None),
          "limit=1000: one page")
    st, body, _ = api.get("/api/v1/devices")
    is_eq((len(body.get("devices", [])), body.get("total")), (100, 250), "the default limit: 100")
    seen, cursor = [], None
    for _ in range(10):
        st, body, _ = api.get("/api/v1/devices?label=odd&limit=50" +
                              (f"&cursor={cursor}" if cursor else ""))
        if st != 200 or body["total"] != 125:
            break
        seen += [d["id"] for d in body["devices"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    is_eq(len(seen), 125, "a filtered walk: 125 odd devices over three pages")
    # Devices removed between pages do not make the walk skip or repeat.
    st, body, _ = api.get("/api/v1/devices?limit=100")
    first = [d["id"] for d in body["devices"]]
    api.call("DELETE", api.dev(first[-1]))
    api.call("DELETE", api.dev(first[0]))
    st, body, _ = api.get(f"/api/v1/devices?limit=100&cursor={body['next_cursor']}")
    is_eq([d["id"] for d in body.get("devices", [])], sorted(want)[100:200],
          "a cursor survives the removal of the device it names")
    stop_clean(h)


if __name__ == "__main__":
    sys.exit(main())
