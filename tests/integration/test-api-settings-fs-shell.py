#!/usr/bin/env python3
"""test-api-settings-fs-shell: the settings, file system and shell routes of
smpgwd against an smp-sim device over UDP.

Every route's success path, its error statuses (400, 401, 403, 404, 413),
hostile names in settings keys and file paths (dot segments, percent-encoded
'/', NUL and control characters, invalid UTF-8, double encoding, overlong
names), a client that disconnects in the middle of a download, and calls to
the device answered while a large upload runs. Speaks TAP; every wait is
bounded.
"""
import base64
import hashlib
import http.client
import os
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import (Harness, built, diag, done, is_eq, ok, skip_all, wait_for,  # noqa: E402
                        wait_line)

DEV = None  # "/api/v1/devices/<id>"


def err_code(body):
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def smp_name(body):
    return body.get("error", {}).get("smp", {}).get("name") if isinstance(body, dict) else None


def check_error(got, status, code, name):
    st, body, _ = got
    if not ok(st == status and (code is None or err_code(body) == code), name):
        diag(f"got {st} {body!r}, want {status} {code}")


def test_settings(h, adm, op, view):
    base = DEV + "/settings/values/"

    st, body, _ = h.request("PUT", base + "app/greeting", {"value": "hello"}, token=adm)
    is_eq((st, body), (200, {"name": "app/greeting"}), "PUT a setting whose name holds '/'")
    st, body, _ = h.request("GET", base + "app/greeting", token=view)
    is_eq((st, body), (200, {"name": "app/greeting", "value": "hello",
                             "value_b64": base64.b64encode(b"hello").decode()}),
          "GET it back (viewer): text and base64")

    raw = b"\x00\xff\x01\x80"
    st, body, _ = h.request("PUT", base + "app/blob",
                            {"value_b64": base64.b64encode(raw).decode()}, token=adm)
    ok(st == 200, "PUT value_b64 with bytes that are not UTF-8")
    st, body, _ = h.request("GET", base + "app/blob", token=op)
    ok(st == 200 and base64.b64decode(body["value_b64"]) == raw and "value" not in body,
       "GET returns the bytes in base64 only")

    st, body, _ = h.request("PUT", base + "app/empty", {"value": ""}, token=adm)
    st, body, _ = h.request("GET", base + "app/empty", token=view)
    is_eq((st, body), (200, {"name": "app/empty", "value": "", "value_b64": ""}),
          "an empty value")

    st, body, _ = h.request("GET", base + "app/greeting?max_size=2", token=view)
    ok(st == 200 and body.get("value") == "he" and "max_size" not in body,
       "?max_size caps the value")
    st, body, _ = h.request("GET", base + "app/greeting?max_size=100", token=view)
    ok(st == 200 and body.get("value") == "hello" and body.get("max_size") == 32,
       "a max_size beyond the device's limit reports the limit")
    for q in ("max_size=0", "max_size=-1", "max_size=abc", "max_size=4294967296"):
        check_error(h.request("GET", base + "app/greeting?" + q, token=view), 400,
                    "bad_query", f"?{q} is 400")

    st, body, _ = h.request("DELETE", base + "app/greeting", token=adm)
    is_eq((st, body), (200, {"name": "app/greeting"}), "DELETE a setting")

    for action in ("commit", "load", "save"):
        st, body, _ = h.request("POST", DEV + "/settings/" + action, token=adm)
        is_eq((st, body), (200, {}), f"POST settings/{action}")
        st, body, _ = h.request("POST", DEV + "/settings/" + action, {}, token=adm)
        ok(st == 200, f"POST settings/{action} with {{}}")
        check_error(h.request("POST", DEV + "/settings/" + action, {"bogus": 1}, token=adm),
                    400, "bad_request", f"settings/{action}: an unknown member is 400")
        check_error(h.request("POST", DEV + "/settings/" + action, [1], token=adm), 400,
                    "bad_request", f"settings/{action}: a body that is not an object is 400")
        check_error(h.request("POST", DEV + "/settings/" + action, token=op), 403, None,
                    f"settings/{action} needs admin (operator: 403)")
    st, body, _ = h.request("POST", DEV + "/settings/save", {"name": "app"}, token=adm)
    ok(st == 200, "save with a subtree name")
    check_error(h.request("POST", DEV + "/settings/save", {"name": 5}, token=adm), 400,
                "bad_request", "save: a name that is not a string is 400")
    check_error(h.request("POST", DEV + "/settings/save", {"name": "a=b"}, token=adm), 400,
                "bad_name", "save: a name with '=' is 400")

    # Missing keys and devices.
    st, body, _ = h.request("GET", base + "app/never-written", token=view)
    ok(st == 404 and err_code(body) == "not_found" and smp_name(body) == "KEY_NOT_FOUND",
       "a missing setting is 404 not_found with the device's KEY_NOT_FOUND")
    st, body, _ = h.request("GET", base + "nosuchroot/x", token=view)
    ok(st == 404 and smp_name(body) == "ROOT_KEY_NOT_FOUND", "an unknown root is 404")
    st, body, _ = h.request("GET", base + "secret/key", token=view)
    ok(st == 502 and err_code(body) == "device_error" and smp_name(body) == "READ_NOT_SUPPORTED",
       "a write-only handler's read is 502 device_error")
    st, body, _ = h.request("PUT", base + "id/name", {"value": "x"}, token=adm)
    ok(st == 502 and smp_name(body) == "WRITE_NOT_SUPPORTED",
       "a read-only handler's write is 502 device_error")
    check_error(h.request("GET", "/api/v1/devices/no-such-device/settings/values/app/x",
                          token=view), 404, "device_not_found", "an unknown device is 404")

    # Bad bodies.
    bad_bodies = [
        ({"value": "a", "value_b64": "YQ=="}, "both value and value_b64"),
        ({}, "neither value nor value_b64"),
        ({"value": 5}, "a value that is not a string"),
        ({"value": None}, "a null value"),
        ({"value_b64": ["YQ=="]}, "a value_b64 that is not a string"),
        ({"value_b64": "not base64!"}, "a value_b64 that is not base64"),
        ({"value_b64": "YQ"}, "a value_b64 without padding"),
        ({"value": "a", "other": 1}, "an unknown member"),
        ([{"value": "a"}], "an array"),
        ("\"value\"", "a JSON string"),
    ]
    for b, what in bad_bodies:
        st, body, _ = h.request("PUT", base + "app/x", b, token=adm,
                                headers={"Content-Type": "application/json"})
        ok(st == 400 and err_code(body) == "bad_request", f"PUT with {what} is 400")
    check_error(h.request("PUT", base + "app/x", "{not json", token=adm), 400, "bad_json",
                "PUT with a body that is not JSON is 400 bad_json")
    check_error(h.request("PUT", base + "app/x", token=adm), 400, "bad_request",
                "PUT without a body is 400")
    check_error(h.request("PUT", base + "app/x", {"value": "v" * 4097}, token=adm), 413,
                "too_large", "a 4097-byte value is 413")
    check_error(h.request("PUT", base + "app/x",
                          {"value_b64": base64.b64encode(b"v" * 4097).decode()}, token=adm),
                413, "too_large", "a 4097-byte value_b64 is 413")

    # Roles and tokens.
    check_error(h.request("PUT", base + "app/x", {"value": "a"}, token=view), 403, None,
                "PUT needs admin (viewer: 403)")
    check_error(h.request("PUT", base + "app/x", {"value": "a"}, token=op), 403, None,
                "PUT needs admin (operator: 403)")
    check_error(h.request("DELETE", base + "app/x", token=op), 403, None,
                "DELETE needs admin (operator: 403)")
    check_error(h.request("GET", base + "app/blob"), 401, None, "GET without a token is 401")
    check_error(h.request("GET", base + "app/blob", token="not-a-token"), 401, None,
                "GET with an unknown token is 401")
    check_error(h.request("PUT", base + "app/x", {"value": "a"}), 401, None,
                "PUT without a token is 401")

    # Double encoding is literal text: "%252F" is the name's "%2F".
    st, body, _ = h.request("PUT", base + "app/x%252Fy", {"value": "pct"}, token=adm)
    is_eq((st, body), (200, {"name": "app/x%2Fy"}), "%252F is the three characters %2F")
    st, body, _ = h.request("GET", base + "app/x%252Fy", token=view)
    ok(st == 200 and body.get("name") == "app/x%2Fy" and body.get("value") == "pct",
       "... read back under the same literal name")
    st, body, _ = h.request("GET", base + "app/x%25y", token=view)
    ok(st == 404 and smp_name(body) == "KEY_NOT_FOUND", "%25 alone is a literal '%' too")

    check_error(h.request("GET", base + "app/" + "n" * 61, token=view), 400, "bad_name",
                "a 65-byte name is 400 bad_name")
    check_error(h.request("PUT", base + "app/a=b", {"value": "x"}, token=adm), 400, "bad_name",
                "a name holding '=' is 400 bad_name")
    # The longest name the gateway passes; this device allows less.
    st, body, _ = h.request("GET", base + "app/" + "n" * 60, token=view)
    ok(st == 502 and smp_name(body) == "KEY_TOO_LONG",
       "a 64-byte name reaches the device, which judges it (KEY_TOO_LONG)")


def hostile(h, adm, tok, prefix, name_code, label):
    """Names and paths the router or the handler must refuse before the
    device sees them. prefix: the route up to the {name+} / {path+} part;
    tok: a token allowed to GET it."""
    cases = [
        ("a/../b", 400, None, "a '..' segment"),
        ("../b", 400, None, "a leading '..' segment"),
        ("a/./b", 400, None, "a '.' segment"),
        ("a/%2e%2e/b", 400, None, "'..' percent-encoded"),
        ("a/%2E%2E", 400, None, "'..' percent-encoded, upper case"),
        ("a/%2e", 400, None, "'.' percent-encoded"),
        ("a%2Fb", 400, None, "%2F inside a segment"),
        ("a%2fb/c", 400, None, "%2f inside a segment"),
        ("a%00b", 400, None, "%00 in a segment"),
        ("a/%ff", 400, None, "%ff: not UTF-8"),
        ("a/%c3%28", 400, None, "an invalid UTF-8 sequence"),
        ("a/%ed%a0%80", 400, None, "a UTF-16 surrogate in UTF-8"),
        ("a/%c0%af", 400, None, "an overlong '/'"),
        ("a//b", 400, None, "an empty segment"),
        ("a/b/", 400, None, "a trailing '/'"),
        ("a%01b", 400, name_code, "%01"),
        ("a%0ab", 400, name_code, "a line feed"),
        ("a%0db", 400, name_code, "a carriage return"),
        ("a%09b", 400, name_code, "a tab"),
        ("a%7fb", 400, name_code, "DEL"),
        ("a%c2%85b", 400, name_code, "U+0085, a C1 control"),
        ("a%1b%5b2J", 400, name_code, "an escape sequence"),
        # Past the server's bound on a path, before any route runs.
        ("x" * 10240, 414, "uri_too_long", "a 10 KB name"),
        ("/".join(["x"] * 3000), 414, "uri_too_long", "3000 segments"),
    ]
    for path, status, code, what in cases:
        st, body, _ = h.request("GET", prefix + path, token=tok)
        if not ok(st == status and (code is None or err_code(body) == code),
                  f"{label}: {what} is {status}"):
            diag(f"got {st} {body!r}")
    st, body, _ = h.request("PUT", prefix + "a%2F..%2Fb", b"x", token=adm,
                            headers={"Content-Type": "application/json"})
    ok(st in (400, 405), f"{label}: PUT with %2F..%2F is refused ({st})")
    st, body, _ = h.request("DELETE", prefix + "a/%2e%2e/b", token=adm)
    ok(st in (400, 405), f"{label}: DELETE with '..' is refused")

    # What http.client will not send: raw bytes in the request line.
    for raw, what in ((b"a\x01b", "a raw control character"), (b"a\xffb", "a raw 0xff byte"),
                      (b"a b", "a raw space")):
        target = prefix.encode() + raw
        st, _ = h.raw_request(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                              b"Authorization: Bearer " + tok.encode() +
                              b"\r\nConnection: close\r\n\r\n")
        ok(st is not None and 400 <= st < 500, f"{label}: {what} is refused ({st})")


def test_fs(h, adm, op, view):
    files = DEV + "/fs/files/"
    data = os.urandom(300 * 1000)

    st, body, hdrs = h.request("PUT", files + "lfs1/data.bin", data, token=adm,
                               headers={"Content-Type": "application/octet-stream"})
    ok(st == 201 and body == {"path": "/lfs1/data.bin", "len": len(data)},
       "PUT a 300 KB file: 201 Created")
    ok(hdrs.get("location", "").endswith("/fs/files/lfs1/data.bin"), "... with its Location")
    st, body, _ = h.request("PUT", files + "lfs1/data.bin", data, token=adm)
    ok(st == 204 and body == b"", "PUT it again: 204 (replaced)")

    st, got, hdrs = h.request("GET", files + "lfs1/data.bin", token=op, raw=True)
    ok(st == 200 and hdrs.get("content-type") == "application/octet-stream",
       "GET the file (operator): 200 application/octet-stream")
    ok(got == data, "the downloaded bytes are the uploaded ones")
    ok(hdrs.get("transfer-encoding") == "chunked", "a large download is chunked")

    st, body, _ = h.request("GET", DEV + "/fs/status/lfs1/data.bin", token=view)
    is_eq((st, body), (200, {"path": "/lfs1/data.bin", "len": len(data)}), "status: its size")

    st, body, _ = h.request("GET", DEV + "/fs/hash/lfs1/data.bin?type=sha256", token=view)
    ok(st == 200 and body.get("output") == hashlib.sha256(data).hexdigest() and
       body.get("type") == "sha256" and body.get("len") == len(data) and body.get("off") == 0,
       "hash sha256 equals hashlib's")
    st, body, _ = h.request("GET", DEV + "/fs/hash/lfs1/data.bin?type=crc32", token=view)
    ok(st == 200 and body.get("output") == zlib.crc32(data), "hash crc32 equals zlib's")
    st, body, _ = h.request("GET", DEV + "/fs/hash/lfs1/data.bin", token=view)
    ok(st == 200 and body.get("type") == "crc32", "without ?type the device's default (crc32)")
    st, body, _ = h.request("GET", DEV + "/fs/hash/lfs1/data.bin?type=sha256&off=1000&len=5000",
                            token=view)
    ok(st == 200 and body.get("output") == hashlib.sha256(data[1000:6000]).hexdigest() and
       body.get("off") == 1000 and body.get("len") == 5000, "hash of a part (off, len)")
    for q in ("type=SHA256", "type=sha256x1234", "type=", "type=sha%2D1", "len=0", "off=x",
              "len=-1"):
        check_error(h.request("GET", DEV + "/fs/hash/lfs1/data.bin?" + q, token=view), 400,
                    "bad_query", f"hash ?{q} is 400")
    st, body, _ = h.request("GET", DEV + "/fs/hash/lfs1/data.bin?type=md5", token=view)
    ok(st in (400, 404, 502) and smp_name(body) == "CHECKSUM_HASH_NOT_FOUND",
       f"an unknown hash type is the device's CHECKSUM_HASH_NOT_FOUND ({st})")
    st, body, _ = h.request("GET", DEV + f"/fs/hash/lfs1/data.bin?off={len(data) + 1}",
                            token=view)
    ok(st in (400, 502) and smp_name(body) == "FILE_OFFSET_LARGER_THAN_FILE",
       f"an offset past the end is the device's FILE_OFFSET_LARGER_THAN_FILE ({st})")

    st, body, _ = h.request("GET", DEV + "/fs/hash-types", token=view)
    ok(st == 200 and body.get("types", {}).get("sha256") == {"format": "bytes", "size": 32} and
       body["types"].get("crc32") == {"format": "number", "size": 4},
       "hash-types: sha256 (bytes, 32) and crc32 (number, 4)")

    st, body, _ = h.request("POST", DEV + "/fs/close", token=adm)
    is_eq((st, body), (200, {}), "POST fs/close")
    check_error(h.request("POST", DEV + "/fs/close", {"x": 1}, token=adm), 400, "bad_request",
                "fs/close with a member is 400")
    check_error(h.request("POST", DEV + "/fs/close", token=op), 403, None,
                "fs/close needs admin")

    # A small file comes whole, with its length; an empty one too.
    small = b"small file\n"
    st, _, _ = h.request("PUT", files + "lfs1/small.txt", small, token=adm)
    st, got, hdrs = h.request("GET", files + "lfs1/small.txt", token=op, raw=True)
    ok(st == 200 and got == small and hdrs.get("content-length") == str(len(small)),
       "a small file: 200 with Content-Length")
    st, body, _ = h.request("PUT", files + "lfs1/empty", b"", token=adm)
    ok(st == 201 and body == {"path": "/lfs1/empty", "len": 0}, "PUT an empty file: 201")
    st, got, hdrs = h.request("GET", files + "lfs1/empty", token=op, raw=True)
    ok(st == 200 and got == b"" and hdrs.get("content-length") == "0",
       "GET the empty file: 200, Content-Length 0")
    st, body, _ = h.request("GET", DEV + "/fs/status/lfs1/empty", token=view)
    ok(st == 200 and body.get("len") == 0, "status of the empty file: 0")

    # Names that are odd but legal are the device's to take.
    st, body, _ = h.request("PUT", files + "lfs1/a%252Fb", b"pct", token=adm)
    ok(st == 201 and body.get("path") == "/lfs1/a%2Fb", "%252F is a literal '%2F' in a file name")
    st, got, _ = h.request("GET", files + "lfs1/a%252Fb", token=op, raw=True)
    ok(st == 200 and got == b"pct", "... and reads back under that name")
    st, body, _ = h.request("PUT", files + "lfs1/caf%C3%A9%20%E2%9C%93.txt", b"utf8", token=adm)
    ok(st == 201 and body.get("path") == "/lfs1/caf\u00e9 \u2713.txt", "UTF-8 and a space in a name")

    # Missing files, directories, mount points.
    st, body, _ = h.request("GET", files + "lfs1/missing.bin", token=op)
    ok(st == 404 and err_code(body) == "not_found" and smp_name(body) == "FILE_NOT_FOUND",
       "downloading a missing file is 404 JSON not_found")
    st, body, _ = h.request("GET", DEV + "/fs/status/lfs1/missing.bin", token=view)
    ok(st == 404 and smp_name(body) == "FILE_NOT_FOUND", "status of a missing file is 404")
    st, body, _ = h.request("GET", DEV + "/fs/hash/lfs1/missing.bin", token=view)
    ok(st == 404, "hash of a missing file is 404")
    st, body, _ = h.request("PUT", files + "nomount/x.bin", b"data", token=adm)
    ok(st == 404 and smp_name(body) == "MOUNT_POINT_NOT_FOUND",
       "uploading outside every mount point is 404 (MOUNT_POINT_NOT_FOUND)")
    st, body, _ = h.request("GET", files + "lfs1", token=op)
    ok(st in (404, 502) and smp_name(body) in ("FILE_IS_DIRECTORY", "FILE_NOT_FOUND"),
       f"downloading a directory is refused ({st} {smp_name(body)})")
    st, body, _ = h.request("GET", DEV + "/fs/status/lfs1/" + "p" * 100, token=view)
    ok(st == 400 and err_code(body) == "device_refused" and smp_name(body) == "EINVAL",
       "a path longer than the device's limit is refused by the device (400 device_refused)")
    longest = "lfs1/" + "q" * (254 - 5)
    st, body, _ = h.request("GET", DEV + "/fs/status/" + longest, token=view)
    ok(st != 400 or err_code(body) != "bad_path", "a 255-byte path reaches the device")
    check_error(h.request("GET", DEV + "/fs/status/" + longest + "q", token=view), 400,
                "bad_path", "a 256-byte path is 400 bad_path")
    check_error(h.request("GET", "/api/v1/devices/no-such-device/fs/files/lfs1/data.bin",
                          token=op), 404, "device_not_found", "an unknown device is 404")

    # Roles and tokens.
    check_error(h.request("GET", files + "lfs1/data.bin", token=view), 403, None,
                "downloading needs operator (viewer: 403)")
    check_error(h.request("PUT", files + "lfs1/x", b"x", token=op), 403, None,
                "uploading needs admin (operator: 403)")
    check_error(h.request("PUT", files + "lfs1/x", b"x"), 401, None,
                "uploading without a token is 401")
    check_error(h.request("GET", files + "lfs1/data.bin"), 401, None,
                "downloading without a token is 401")
    check_error(h.request("GET", DEV + "/fs/hash-types"), 401, None,
                "hash-types without a token is 401")
    st, _, _ = h.request("GET", DEV + "/fs/status/lfs1/data.bin", token=op)
    ok(st == 200, "status with operator")
    return data


def dump_requests(h, sim):
    """The device's request counter, from the simulator's dump."""
    if not h.sim_command(sim, "dump"):
        return None
    line = wait_line(sim, "requests,", 5, stream="stderr")
    if not line:
        return None
    for part in line.split(","):
        part = part.strip()
        if part.endswith(" requests"):
            return int(part.split()[0])
    return None


def test_disconnect(h, sim, adm, op):
    """A client that leaves in the middle of a download stops the device
    reads; the daemon and the device stay usable."""
    files = DEV + "/fs/files/"
    data = os.urandom(2 * 1000 * 1000)
    st, _, _ = h.request("PUT", files + "lfs1/big.bin", data, token=adm, timeout=60)
    if not ok(st == 201, "PUT a 2 MB file"):
        return
    # Slow answers: the whole download would take about 20 s.
    is_eq(h.sim_command(sim, "set latency 20"), "OK set latency 20", "slow the device down")

    c = h.connect(30)
    c.request("GET", files + "lfs1/big.bin", headers={"Authorization": f"Bearer {op}"})
    r = c.getresponse()
    first = r.read(32 * 1024)
    ok(r.status == 200 and first == data[:len(first)] and len(first) == 32 * 1024,
       "the download starts with the file's first bytes")
    c.sock.close()
    c.close()

    # The reads stop: the device's request counter comes to rest long before
    # the ~1000 requests of the whole file.
    before = dump_requests(h, sim)
    state = {"last": before}

    def at_rest():
        n = dump_requests(h, sim)
        if n is None:
            return None
        same = n == state["last"]
        state["last"] = n
        return n if same else None

    rest = wait_for(at_rest, 10, step=0.3)
    ok(before is not None and rest is not None and rest - before < 100,
       f"the device reads stop after the client left ({before} -> {rest} requests)")
    is_eq(h.sim_command(sim, "set latency 0"), "OK set latency 0", "full speed again")

    st, body, _ = h.request("GET", "/api/v1/health")
    ok(st == 200, "the daemon is healthy")
    st, body, _ = h.request("GET", DEV + "/settings/values/app/blob", token=op)
    ok(st == 200, "the device's next call works")
    st, got, _ = h.request("GET", files + "lfs1/big.bin", token=op, raw=True, timeout=60)
    ok(st == 200 and got == data, "a whole download afterwards is intact")

    # The device stops answering in the middle: the body is cut, not ended.
    h.sim_command(sim, "set latency 20")
    c = h.connect(60)
    c.request("GET", files + "lfs1/big.bin", headers={"Authorization": f"Bearer {op}"})
    r = c.getresponse()
    first = r.read(32 * 1024)
    is_eq(h.sim_command(sim, "set drop-rate 1"), "OK set drop-rate 1", "the device goes silent")
    try:
        rest = r.read()
        cut = len(first) + len(rest) < len(data)
        what = f"{len(first) + len(rest)} bytes, then the end"
    except http.client.IncompleteRead as e:
        cut = True
        what = f"IncompleteRead after {len(first) + len(e.partial)} bytes"
    c.close()
    ok(r.status == 200 and cut, f"a download failing midway is a truncated body ({what})")
    h.sim_command(sim, "set drop-rate 0")
    h.sim_command(sim, "set latency 0")
    st, body, _ = h.request("GET", DEV + "/fs/status/lfs1/big.bin", token=op)
    ok(st == 200 and body.get("len") == len(data), "the device answers again afterwards")


def test_concurrent(h, adm, op):
    """Calls to the device are answered while a large upload runs."""
    data = os.urandom(1024 * 1024)
    result = {}

    def upload():
        result["start"] = time.monotonic()
        result["status"] = h.request("PUT", DEV + "/fs/files/lfs1/concurrent.bin", data,
                                     token=adm, timeout=60)[0]
        result["end"] = time.monotonic()

    t = threading.Thread(target=upload)
    t.start()
    answered = []
    end = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < end:
        st, body, _ = h.request("GET", DEV + "/settings/values/app/blob", token=op)
        st2, body2, _ = h.request("POST", DEV + "/shell", {"argv": ["echo", "during"]}, token=adm)
        if t.is_alive():
            answered.append((st, st2, body2.get("output", "") if isinstance(body2, dict) else ""))
    t.join(60)
    ok(result.get("status") in (201, 204), f"the 1 MB upload succeeds ({result.get('status')})")
    during = [a for a in answered if a[0] == 200 and a[1] == 200 and "during" in a[2]]
    ok(len(during) >= 1,
       f"a settings read and a shell call are answered while it runs ({len(during)} times)")
    if answered and len(during) < len(answered):
        diag(f"answers during the upload: {answered!r}")
    st, body, _ = h.request("GET", DEV + "/fs/hash/lfs1/concurrent.bin?type=sha256", token=op)
    ok(st == 200 and body.get("output") == hashlib.sha256(data).hexdigest(),
       "the uploaded file is intact")


def test_shell(h, adm, op, view):
    st, body, _ = h.request("POST", DEV + "/shell", {"argv": ["echo", "hello", "world"]},
                            token=adm)
    ok(st == 200 and body.get("ret") == 0 and "hello world" in body.get("output", "") and
       "output_b64" not in body, "shell echo: output and exit code 0")
    st, body, _ = h.request("POST", DEV + "/shell", {"argv": ["kernel", "version"]}, token=adm)
    ok(st == 200 and "Zephyr version" in body.get("output", ""), "shell kernel version")
    st, body, _ = h.request("POST", DEV + "/shell", {"argv": ["nosuchcommand"]}, token=adm)
    ok(st == 200 and body.get("ret", 0) != 0 and "command not found" in body.get("output", ""),
       "an unknown command is 200 with a non-zero exit code")
    st, body, _ = h.request("POST", DEV + "/shell", {"argv": ["echo", "caf\u00e9"]}, token=adm)
    ok(st == 200 and "caf\u00e9" in body.get("output", ""), "UTF-8 output survives")
    st, body, _ = h.request("POST", DEV + "/shell", {"argv": ["echo", "x" * 200, "y" * 200]},
                            token=adm)
    ok(st in (400, 502) and smp_name(body) == "COMMAND_TOO_LONG",
       f"a line longer than the device's buffer is its COMMAND_TOO_LONG ({st})")

    bad = [
        ({}, "no argv"),
        ({"argv": []}, "an empty argv"),
        ({"argv": "echo hi"}, "argv as a string"),
        ({"argv": ["echo", 1]}, "a word that is a number"),
        ({"argv": ["echo", None]}, "a null word"),
        ({"argv": ["echo", ""]}, "an empty word"),
        ({"argv": ["echo", "a\nkernel reboot"]}, "a line feed in a word"),
        ({"argv": ["echo", "a\rb"]}, "a carriage return"),
        ({"argv": ["echo", "a\u0085b"]}, "a C1 control"),
        ({"argv": ["echo"] * 65}, "65 words"),
        ({"argv": ["echo", "w" * 257]}, "a 257-byte word"),
        ({"argv": ["echo"] + ["w" * 250] * 5}, "a line over 1024 bytes"),
        ({"argv": ["echo"], "extra": 1}, "an unknown member"),
        (["echo"], "an array body"),
    ]
    for b, what in bad:
        check_error(h.request("POST", DEV + "/shell", b, token=adm), 400, "bad_request",
                    f"shell with {what} is 400")
    check_error(h.request("POST", DEV + "/shell", "{", token=adm), 400, "bad_json",
                "shell with broken JSON is 400 bad_json")
    check_error(h.request("POST", DEV + "/shell", '{"argv": ["echo", "a\\u0000b"]}', token=adm,
                          headers={"Content-Type": "application/json"}), 400, "bad_json",
                "shell with a NUL in a word is 400 bad_json (the server takes no NUL in JSON)")
    check_error(h.request("POST", DEV + "/shell", {"argv": ["echo"]}, token=op), 403, None,
                "shell needs admin (operator: 403)")
    check_error(h.request("POST", DEV + "/shell", {"argv": ["echo"]}, token=view), 403, None,
                "shell needs admin (viewer: 403)")
    check_error(h.request("POST", DEV + "/shell", {"argv": ["echo"]}), 401, None,
                "shell without a token is 401")
    check_error(h.request("POST", "/api/v1/devices/no-such-device/shell", {"argv": ["echo"]},
                          token=adm), 404, "device_not_found", "shell on an unknown device is 404")


def main():
    global DEV
    if not built():
        return skip_all("smp-sim or smpgwd not built")
    h = Harness()
    try:
        sim = h.sim("--udp", "127.0.0.1:0", "--state", os.path.join(h.tmp, "sim"),
                    control=True, stderr=True)
        line = h.wait_sim(sim, "READY udp")
        if not ok(line, "smp-sim ready"):
            return done()
        addr = line.split()[2]
        if not ok(h.wait_sim(sim, "READY all"), "smp-sim: READY all"):
            return done()
        tokens = {r: h.token("t-" + r, r) for r in ("admin", "operator", "viewer")}
        adm, op, view = tokens["admin"], tokens["operator"], tokens["viewer"]
        # One poll at start (no jitter) brings the device online; no more after.
        if not ok(h.start_daemon(extra_config=f"[device sfs]\ntransport = udp\naddress = {addr}\n"
                                 "[poll]\ninterval = 1h\njitter = 0\n"),
                  "smpgwd ready"):
            return done()
        dev_id = "udp-" + addr.replace(".", "-").replace(":", "-")
        DEV = "/api/v1/devices/" + dev_id

        def online():
            st, body, _ = h.request("GET", DEV, token=view)
            return st == 200 and body.get("online")

        if not ok(wait_for(online, 20), "the device is online"):
            return done()

        test_settings(h, adm, op, view)
        hostile(h, adm, view, DEV + "/settings/values/", "bad_name", "settings")
        test_fs(h, adm, op, view)
        hostile(h, adm, view, DEV + "/fs/status/", "bad_path", "fs status")
        hostile(h, adm, op, DEV + "/fs/files/", "bad_path", "fs files")
        test_shell(h, adm, op, view)
        test_concurrent(h, adm, op)
        test_disconnect(h, sim, adm, op)
        ok(h.stop_daemon() == 0, "smpgwd exits cleanly")
    finally:
        h.close()
    return done()


if __name__ == "__main__":
    sys.exit(main())
