#!/usr/bin/env python3
"""test-api-events-metrics: GET /api/v1/events (Server-Sent Events) and GET
/metrics (Prometheus text) of the real smpgwd against smp-sim over UDP.

Events: a configured UDP device coming online is streamed; heartbeats come
at the asked pace; Last-Event-ID resumes with exactly the later events, and a
lost past gives an `event: reset` first; the device, type and rollout filters
hold. Metrics: every line of the exposition matches the text format 0.0.4
grammar, families are whole and typed, the expected families are there, a
device's stats field equals what the simulator itself answers, and a
hostile device name is escaped. Both need a token. Speaks TAP.
"""
import os
import re
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import (Harness, SseStream, built, diag, done, is_eq, ok,  # noqa: E402
                        skip_all, wait_for)


# ---- the simulator, asked directly (the truth the daemon's cache must show) ----

def cbor_decode(b, i=0):
    """Decodes one CBOR item of what SMP uses; returns (value, next index)."""
    ib = b[i]
    major, info = ib >> 5, ib & 31
    i += 1
    if info < 24:
        arg = info
    elif info in (24, 25, 26, 27):
        n = 1 << (info - 24)
        arg = int.from_bytes(b[i:i + n], "big")
        i += n
    elif info == 31:
        arg = None
    else:
        raise ValueError("bad CBOR")
    if major == 0:
        return arg, i
    if major == 1:
        return -1 - arg, i
    if major in (2, 3):
        v = b[i:i + arg]
        return (v.decode() if major == 3 else v), i + arg
    if major == 4:
        out = []
        while (arg is None and b[i] != 0xff) or (arg is not None and len(out) < arg):
            v, i = cbor_decode(b, i)
            out.append(v)
        return out, i + (1 if arg is None else 0)
    if major == 5:
        out, n = {}, 0
        while (arg is None and b[i] != 0xff) or (arg is not None and n < arg):
            k, i = cbor_decode(b, i)
            v, i = cbor_decode(b, i)
            out[k] = v
            n += 1
        return out, i + (1 if arg is None else 0)
    if major == 7:
        return {20: False, 21: True, 22: None}.get(info), i
    raise ValueError("unsupported CBOR")


def cbor_text(s):
    e = s.encode()
    assert len(e) < 24
    return bytes([0x60 | len(e)]) + e


def sim_stat_show(address, group, timeout=5):
    """Stat show of one group, asked of the simulator over UDP (SMP v2)."""
    host, port = address.rsplit(":", 1)
    payload = b"\xa1" + cbor_text("name") + cbor_text(group)
    seq = 0x5a
    pkt = struct.pack(">BBHHBB", 0x08, 0, len(payload), 2, seq, 0) + payload
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(pkt, (host, int(port)))
        while True:
            data, _ = s.recvfrom(4096)
            if len(data) > 8 and data[6] == seq:
                return cbor_decode(data, 8)[0]
    finally:
        s.close()


# ---- the text format, line by line ----

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABELS = r"\{(?:%s=%s(?:,%s=%s)*)?\}" % ("[a-zA-Z_][a-zA-Z0-9_]*", LABEL_VALUE,
                                         "[a-zA-Z_][a-zA-Z0-9_]*", LABEL_VALUE)
VALUE = r"(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|NaN|[-+]Inf)"
SAMPLE_RE = re.compile(r"^(%s)(%s)? (%s)$" % (NAME, LABELS, VALUE))
HELP_RE = re.compile(r"^# HELP (%s) (?:[^\\\n]|\\[\\n])*$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|summary|histogram|untyped)$" % NAME)
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)=(%s)' % LABEL_VALUE)


def unescape(v):
    out, i = [], 1
    while i < len(v) - 1:
        c = v[i]
        if c == "\\":
            out.append({"\\": "\\", '"': '"', "n": "\n"}[v[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_metrics(text):
    """Checks the exposition strictly; returns (problems, types, samples)
    where samples is a list of (name, {label: value}, float)."""
    problems, types, samples = [], {}, []
    finished, current = set(), None
    if not text.endswith("\n"):
        problems.append("no final line feed")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            if not HELP_RE.match(line):
                problems.append(f"line {n}: bad HELP: {line!r}")
            continue
        if line.startswith("# TYPE "):
            m = TYPE_RE.match(line)
            if not m:
                problems.append(f"line {n}: bad TYPE: {line!r}")
                continue
            fam = m.group(1)
            if fam in types:
                problems.append(f"line {n}: {fam} typed twice")
            types[fam] = m.group(2)
            if current:
                finished.add(current)
            current = fam
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            problems.append(f"line {n}: not a sample: {line!r}")
            continue
        name = m.group(1)
        fam = name
        if types.get(current) == "summary" and name in (current + "_sum", current + "_count"):
            fam = current
        if fam != current:
            problems.append(f"line {n}: {name} outside its family ({current})")
        if fam in finished:
            problems.append(f"line {n}: family {fam} split")
        labels = {k: unescape(v) for k, v in LABEL_RE.findall(m.group(2) or "")}
        samples.append((name, labels, float(m.group(3))))
    return problems, types, samples


def find(samples, name, **labels):
    return [s for s in samples if s[0] == name and all(s[1].get(k) == v
                                                       for k, v in labels.items())]


def free_udp_ports():
    """A port p with p and p + 1 free for UDP on loopback (smp-sim --count 2)."""
    for _ in range(100):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port < 65535:
                b.bind(("127.0.0.1", port + 1))
                return port
        except OSError:
            pass
        finally:
            a.close()
            b.close()
    raise RuntimeError("no two free UDP ports in a row")


def device_id(identity):
    """gw_registry_id_from_identity for short identities."""
    out, dash = [], False
    for c in identity.lower():
        if c.isascii() and c.isalnum():
            if dash and out:
                out.append("-")
            dash = False
            out.append(c)
        else:
            dash = True
    return "".join(out)


HOSTILE = 'we"ird\\name'


def main():
    if not built():
        return skip_all("smpgwd or smp-sim not built")
    h = Harness()
    try:
        return run(h)
    finally:
        h.close()


def run(h):
    # Two simulated devices on known ports; the first is configured now, the
    # simulator starts after the daemon so that its coming online is streamed.
    port = free_udp_ports()
    addr0, addr1 = f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"
    id0, id1 = device_id("udp:" + addr0), device_id("udp:" + addr1)
    base = ("[smp]\ntimeout = 300ms\nretries = 0\n[poll]\ninterval = 1s\n"
            f"[device {HOSTILE}]\ntransport = udp\naddress = {addr0}\n")
    h.write_config(base)
    viewer = h.token("dash", "viewer")
    if not ok(h.start_daemon() is not None and h.port, "smpgwd started"):
        return done()

    # ---- auth ----
    st, body, _ = h.request("GET", "/api/v1/events")
    is_eq(st, 401, "events without a token: 401")
    st, body, _ = h.request("GET", "/metrics")
    is_eq(st, 401, "metrics without a token: 401")
    st, body, _ = h.request("GET", "/metrics", token="not-a-token")
    is_eq(st, 401, "metrics with an unknown token: 401")

    # ---- bad arguments ----
    for q in ("heartbeat=50", "heartbeat=abc", "rollout=0", "rollout=x", "device=", "device=a,,b",
              "type=", "last_event_id=12x"):
        st, body, _ = h.request("GET", "/api/v1/events?" + q, token=viewer)
        ok(st == 400 and isinstance(body, dict) and body["error"]["code"] == "bad_request",
           f"events?{q}: 400 bad_request")
    st, body, _ = h.request("GET", "/api/v1/events", token=viewer,
                            headers={"Last-Event-ID": "nope"})
    is_eq(st, 400, "a malformed Last-Event-ID: 400")

    # ---- the stream: a device coming online ----
    a = SseStream(h, "/api/v1/events?heartbeat=200", token=viewer)
    is_eq(a.status, 200, "events: 200")
    ok(a.headers.get("content-type", "").startswith("text/event-stream"),
       "content type text/event-stream")
    is_eq(a.headers.get("cache-control"), "no-cache", "Cache-Control: no-cache")
    first = a.next(5)
    is_eq(first, {"comment": "stream"}, "the stream opens with a comment")

    sim = h.sim("--count", "2", "--udp", addr0)
    ok(h.wait_sim(sim, "READY all"), "smp-sim started")
    online = a.wait_event(lambda e: e["event"] == "device.online"
                          and e["data"].get("device") == id0, 20)
    ok(online is not None, "device.online of the configured device streamed")
    if online:
        ok(re.fullmatch(r"[0-9]+", online.get("id", "")) is not None, "the event has an id")
        ok(isinstance(online["data"].get("last_seen_ms"), int), "data: last_seen_ms")
    img = a.wait_event(lambda e: e["event"] == "image.state", 10)
    ok(img is not None and img["data"].get("device") == id0
       and isinstance(img["data"].get("images"), list) and img["data"]["images"],
       "image.state with the images after the first poll")

    # ---- heartbeats ----
    t0 = time.monotonic()
    beats = 0
    while beats < 3 and time.monotonic() - t0 < 5:
        b = a.next(5)
        if b is None:
            break
        a.seen.append(b)
        beats += b.get("comment") == "heartbeat"
    ok(beats >= 3, "heartbeat comments with ?heartbeat=200")
    ok(time.monotonic() - t0 < 3, "three heartbeats well within 3 s")

    # ---- filters ----
    f_dev = SseStream(h, f"/api/v1/events?heartbeat=200&device={id1},nobody", token=viewer)
    f_type = SseStream(h, "/api/v1/events?heartbeat=200&type=device.added", token=viewer)
    f_img = SseStream(h, "/api/v1/events?heartbeat=200&type=image.", token=viewer)
    f_roll = SseStream(h, "/api/v1/events?heartbeat=200&rollout=5", token=viewer)
    ok(all(s.status == 200 for s in (f_dev, f_type, f_img, f_roll)), "filtered streams open")
    for s in (f_dev, f_type, f_img, f_roll):
        s.next(5)  # the opening comment
    # A second device: SIGHUP with the configuration grown.
    h.write_config(base + f"[device second]\ntransport = udp\naddress = {addr1}\n")
    h.gwd.send_signal(signal.SIGHUP)
    added = f_dev.wait_event(lambda e: e["event"] == "device.added", 10)
    ok(added is not None and added["data"].get("device") == id1
       and added["data"].get("name") == "second", "device filter: device.added of that device")
    on1 = f_dev.wait_event(lambda e: e["event"] == "device.online", 20)
    ok(on1 is not None and on1["data"].get("device") == id1,
       "device filter: its device.online")
    ok(all(e["data"].get("device") == id1 for e in f_dev.seen if "event" in e),
       "device filter: nothing about other devices")
    t_added = f_type.wait_event(lambda e: True, 5)
    ok(t_added is not None and t_added["event"] == "device.added", "type filter: device.added")
    # Whatever the others got by now: the image state of the new device at most.
    f_img.wait_event(lambda e: e["data"].get("device") == id1, 10)
    ok(all(e["event"].startswith("image.") for e in f_img.seen if "event" in e)
       and any("event" in e for e in f_img.seen), "type prefix filter: only image.* events")
    f_roll.wait_event(lambda e: True, 1)
    ok(not any("event" in e for e in f_roll.seen), "rollout filter: no device event")
    ok(any(e.get("comment") == "heartbeat" for e in f_roll.seen),
       "rollout filter: heartbeats still come")

    # ---- Last-Event-ID resume ----
    a.wait_event(lambda e: e["event"] == "device.online" and e["data"].get("device") == id1, 20)
    events = [e for e in a.seen if "event" in e]
    ok(len(events) >= 4, f"stream A saw {len(events)} events")
    ids = [int(e["id"]) for e in events]
    is_eq(ids, sorted(set(ids)), "ids strictly increase")
    cut = events[1]
    later = [int(e["id"]) for e in events[2:]]
    b = SseStream(h, "/api/v1/events?heartbeat=200", token=viewer,
                  headers={"Last-Event-ID": cut["id"]})
    b.next(5)
    replay = []
    while len(replay) < len(later):
        x = b.next(3)
        if x is None:
            break
        if "event" in x:
            replay.append(x)
    ok(not any(e["event"] == "reset" for e in replay), "resume within the retained: no reset")
    got = [int(e["id"]) for e in replay]
    ok(got[:len(later)] == later and all(i > int(cut["id"]) for i in got),
       "Last-Event-ID: exactly the later events, in order")
    b.close()
    c = SseStream(h, f"/api/v1/events?last_event_id={later[-1]}&heartbeat=200", token=viewer)
    c.next(5)
    x = c.next(1)
    ok(x is None or "event" not in x or int(x["id"]) > later[-1],
       "?last_event_id= at the newest: nothing old replayed")
    c.close()
    d = SseStream(h, "/api/v1/events?heartbeat=200", token=viewer,
                  headers={"Last-Event-ID": "1"})
    d.next(5)
    x = d.next(5)
    ok(x is not None and x.get("event") == "reset"
       and x["data"] == {"reason": "events were dropped, re-read state"},
       "an id older than this run: event reset first")
    y = d.next(5)
    ok(y is not None and "event" in y and y["event"] != "reset",
       "then the retained events")
    d.close()

    # ---- metrics ----
    # Stats are polled every second; wait until both devices reported them.
    def scrape():
        st, body, hdrs = h.request("GET", "/metrics", token=viewer, raw=True)
        return st, body.decode("utf-8") if isinstance(body, bytes) else body, hdrs

    def both_have_stats():
        _, text, _ = scrape()
        return ('smpgw_device_stats_age_seconds{device="%s"}' % id0 in text
                and 'smpgw_device_stats_age_seconds{device="%s"}' % id1 in text)

    ok(wait_for(both_have_stats, 20), "both devices' stats in /metrics")
    # Bracket one scrape between two direct reads: fields that did not move
    # must show the simulator's own values.
    before = sim_stat_show(addr0, "flash_sim_stats")["fields"]
    st, text, hdrs = scrape()
    after = sim_stat_show(addr0, "flash_sim_stats")["fields"]
    is_eq(st, 200, "metrics: 200 with a viewer token")
    is_eq(hdrs.get("content-type"), "text/plain; version=0.0.4; charset=utf-8",
          "metrics content type")
    problems, types, samples = parse_metrics(text)
    ok(not problems, "every line matches the text format, families whole and typed")
    for p in problems[:10]:
        diag(p)
    for fam, typ in (("smpgw_smp_requests_total", "counter"),
                     ("smpgw_smp_bytes_sent_total", "counter"),
                     ("smpgw_smp_bytes_received_total", "counter"),
                     ("smpgw_smp_retransmits_total", "counter"),
                     ("smpgw_smp_timeouts_total", "counter"),
                     ("smpgw_http_requests_total", "counter"),
                     ("smpgw_http_request_duration_seconds", "summary"),
                     ("smpgw_devices", "gauge"),
                     ("smpgw_device_online", "gauge"),
                     ("smpgw_device_last_seen_timestamp_seconds", "gauge"),
                     ("smpgw_device_rssi_dbm", "gauge"),
                     ("smpgw_device_info", "gauge"),
                     ("smpgw_device_stat", "gauge"),
                     ("smpgw_device_stats_age_seconds", "gauge"),
                     ("smpgw_jobs", "gauge"),
                     ("smpgw_rollout_bytes_done", "gauge"),
                     ("smpgw_rollout_bytes_total", "gauge")):
        is_eq(types.get(fam), typ, f"family {fam} ({typ})")
    img_ok = find(samples, "smpgw_smp_requests_total", group="image", result="ok")
    ok(img_ok and img_ok[0][2] >= 2, "image/ok requests counted (polls)")
    ok(find(samples, "smpgw_smp_requests_total", group="stat", result="ok"),
       "stat requests counted")
    sent = find(samples, "smpgw_smp_bytes_sent_total")
    ok(sent and sent[0][2] > 0, "bytes sent > 0")
    ok(find(samples, "smpgw_devices", transport="udp", state="online")[0][2] == 2,
       "smpgw_devices: 2 UDP devices online")
    is_eq([s[2] for s in find(samples, "smpgw_device_online", device=id0)], [1.0],
          "device online 1")
    seen = find(samples, "smpgw_device_last_seen_timestamp_seconds", device=id0)
    ok(seen and abs(seen[0][2] - time.time()) < 60, "last seen is a recent Unix time")
    ok(not find(samples, "smpgw_device_rssi_dbm"), "no RSSI for UDP devices")
    info = find(samples, "smpgw_device_info", device=id0)
    ok(info and info[0][1].get("name") == HOSTILE, "hostile name escaped and read back intact")
    ok(('name="we\\"ird\\\\name"') in text, "escaped as \\\" and \\\\ in the text")
    ok(info and re.fullmatch(r"[0-9a-f]{64}", info[0][1].get("hash", "")) is not None
       and info[0][1].get("version", "").startswith("1.0.0")
       and info[0][1].get("transport") == "udp", "info: version and hash of the active image")
    stable = {k: v for k, v in before.items() if after.get(k) == v}
    ok(stable, "some flash stats fields did not move during the scrape")
    mismatch = []
    for field, value in stable.items():
        got = find(samples, "smpgw_device_stat", device=id0, group="flash_sim_stats", field=field)
        if not got or got[0][2] != value:
            mismatch.append((field, value, got))
    ok(not mismatch, "device stat fields equal what the simulator reports")
    for m in mismatch[:5]:
        diag(m)
    ticks = find(samples, "smpgw_device_stat", device=id0, group="smp_svr_stats", field="ticks")
    ok(ticks, "smp_svr_stats ticks present")
    age = find(samples, "smpgw_device_stats_age_seconds", device=id0)
    ok(age and 0 <= age[0][2] < 30, "stats age in seconds")
    routes = find(samples, "smpgw_http_requests_total", method="GET", route="/metrics",
                  status="200")
    ok(routes and routes[0][2] >= 1, "HTTP requests counted by route and status")
    ok(find(samples, "smpgw_http_request_duration_seconds_count", route="/metrics"),
       "HTTP durations counted")

    # A stream cut by the daemon's shutdown ends cleanly for the client.
    a.close()
    for s in (f_dev, f_type, f_img, f_roll):
        s.close()
    is_eq(h.stop_daemon(), 0, "smpgwd exits 0 with streams having been open")
    return done()


if __name__ == "__main__":
    sys.exit(main())
