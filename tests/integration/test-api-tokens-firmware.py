#!/usr/bin/env python3
"""test-api-tokens-firmware: tokens (CLI and API) and the firmware store over HTTP,
against the real smpgwd.

The token commands run before and while the daemon runs (they share its sqlite
database); every role is tried on the admin-only token routes and the
operator-only firmware writes; firmware uploads answer 201, 200 (already
stored), 400 (not an image), 413 (over a small max_body); list, get, delete and
their 404s; a rollout that is not finished holds its image (409). Secrets must
never reach the daemon's log. Speaks TAP.
"""
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smpgw_test import Harness, built, diag, done, is_eq, ok, skip_all, top_srcdir  # noqa: E402

IMAGES = os.path.join(top_srcdir, "tests", "data", "images")
MAX_BODY = 80 * 1024


def image(name):
    with open(os.path.join(IMAGES, name), "rb") as f:
        return f.read()


def error_code(body):
    try:
        return body["error"]["code"]
    except (TypeError, KeyError):
        return None


def error_message(body):
    try:
        return body["error"]["message"]
    except (TypeError, KeyError):
        return ""


def upload(h, data, token, query=""):
    return h.request("POST", "/api/v1/firmware" + query, body=data, token=token,
                     headers={"Content-Type": "application/octet-stream"})


def cli_tests(h, secrets):
    rc, out, err = h.smpgwd("token", "create", "ops", "--role", "operator")
    ok(rc == 0, "CLI: token create ops --role operator")
    secrets["ops"] = out.strip().splitlines()[-1]
    ok(secrets["ops"].startswith("smpgw_") and len(secrets["ops"]) == 49,
       "CLI: the secret is the last line of stdout")
    secrets["admin"] = h.token("root", "admin")
    secrets["viewer"] = h.token("watch", "viewer")
    rc, out, err = h.smpgwd("token", "create", "ops", "--role", "viewer")
    ok(rc == 1 and "exists" in err and not out, "CLI: a taken name exits 1 with a message")
    rc, out, err = h.smpgwd("token", "create", "x", "--role", "root")
    ok(rc == 1 and "unknown role" in err, "CLI: an unknown role exits 1 with a message")
    rc, out, err = h.smpgwd("token", "create", "bad/name", "--role", "viewer")
    ok(rc == 1 and "name" in err, "CLI: a bad name exits 1 with a message")
    rc, out, err = h.smpgwd("token", "revoke", "nobody")
    ok(rc == 1 and "no token" in err, "CLI: revoking an unknown token exits 1 with a message")
    # Options after the subcommand, state directory on the command line.
    rc, out, err = h.smpgwd("token", "list", "--state-dir", h.state)
    lines = out.splitlines()
    ok(rc == 0 and lines and lines[0].split()[:2] == ["NAME", "ROLE"], "CLI: token list prints a table")
    names = [l.split()[0] for l in lines[1:]]
    is_eq(sorted(names), ["ops", "root", "watch"], "CLI: every token listed")
    ok(not any(s in out for s in secrets.values()), "CLI: list shows no secret")


def token_route_tests(h, secrets):
    adm, op, view = secrets["admin"], secrets["ops"], secrets["viewer"]
    st, body, _ = h.request("GET", "/api/v1/tokens", token=adm)
    ok(st == 200 and isinstance(body, dict) and isinstance(body.get("tokens"), list),
       "GET /tokens as admin: 200 with a list")
    names = sorted(t["name"] for t in body["tokens"]) if st == 200 else []
    is_eq(names, ["ops", "root", "watch"], "the CLI's tokens are listed")
    ok(st == 200 and all(set(t) == {"name", "role", "created_at", "last_used_at", "revoked_at"}
                         for t in body["tokens"]), "entries hold no secret and no hash")
    root = [t for t in body.get("tokens", []) if t["name"] == "root"]
    ok(root and isinstance(root[0]["last_used_at"], int), "the admin token's use was recorded")
    for who, tok in (("operator", op), ("viewer", view)):
        st, body, _ = h.request("GET", "/api/v1/tokens", token=tok)
        ok(st == 403 and error_code(body) == "forbidden", f"GET /tokens as {who}: 403")
        st, body, _ = h.request("POST", "/api/v1/tokens", {"name": "x", "role": "admin"}, token=tok)
        ok(st == 403 and error_code(body) == "forbidden", f"POST /tokens as {who}: 403")
        st, body, _ = h.request("DELETE", "/api/v1/tokens/root", token=tok)
        ok(st == 403, f"DELETE /tokens/root as {who}: 403")
    st, body, hdrs = h.request("GET", "/api/v1/tokens")
    ok(st == 401 and error_code(body) == "unauthorized" and hdrs.get("www-authenticate", "").startswith("Bearer"),
       "GET /tokens without a token: 401 with WWW-Authenticate")
    st, body, _ = h.request("GET", "/api/v1/tokens", token=adm[:-1] + ("A" if adm[-1] != "A" else "B"))
    ok(st == 401, "a wrong secret with the right prefix: 401")

    st, body, _ = h.request("POST", "/api/v1/tokens", {"name": "api1", "role": "viewer"}, token=adm)
    ok(st == 201 and body.get("name") == "api1" and body.get("role") == "viewer" and
       str(body.get("token", "")).startswith("smpgw_"), "POST /tokens: 201 with the secret")
    api1 = body.get("token", "") if st == 201 else ""
    secrets["api1"] = api1
    st, body, _ = h.request("GET", "/api/v1/firmware", token=api1)
    ok(st == 200, "the new token works at once")
    st, body, _ = h.request("GET", "/api/v1/tokens", token=api1)
    ok(st == 403, "with its role (viewer)")

    cases = [
        ({"name": "api1", "role": "admin"}, 409, "name_taken", "a taken name"),
        ({"name": "root", "role": "viewer"}, 409, "name_taken", "a name the CLI took"),
        ({"name": "new", "role": "root"}, 400, "invalid_role", "an unknown role"),
        ({"name": "new", "role": "none"}, 400, "invalid_role", "role none"),
        ({"name": "a b", "role": "viewer"}, 400, "invalid_name", "a name with a space"),
        ({"name": "", "role": "viewer"}, 400, "invalid_name", "an empty name"),
        ({"name": "n" * 65, "role": "viewer"}, 400, "invalid_name", "a 65-character name"),
        ({"name": "../x", "role": "viewer"}, 400, "invalid_name", "a path as name"),
        ({"role": "viewer"}, 400, "bad_request", "no name"),
        ({"name": "new"}, 400, "bad_request", "no role"),
        ({"name": 5, "role": "viewer"}, 400, "bad_request", "a number as name"),
        ({"name": "new", "role": ["admin"]}, 400, "bad_request", "an array as role"),
        ({"name": "new", "role": "viewer", "secret": "x"}, 400, "bad_request", "an unknown member"),
        (["new", "viewer"], 400, "bad_request", "an array body"),
        ('{"name": "new", "role": "viewer"', 400, "bad_json", "broken JSON"),
    ]
    for req, want, code, what in cases:
        st, body, _ = h.request("POST", "/api/v1/tokens", req, token=adm,
                                headers={"Content-Type": "application/json"})
        ok(st == want and error_code(body) == code, f"POST /tokens with {what}: {want} {code}")
        if st != want or error_code(body) != code:
            diag(f"got {st} {body!r}")
    st, body, _ = h.request("POST", "/api/v1/tokens", token=adm)
    ok(st == 400 and error_code(body) == "bad_request", "POST /tokens without a body: 400")

    st, body, _ = h.request("DELETE", "/api/v1/tokens/api1", token=adm)
    ok(st == 204 and not body, "DELETE /tokens/api1: 204")
    st, body, _ = h.request("GET", "/api/v1/firmware", token=api1)
    ok(st == 401 and error_code(body) == "unauthorized", "the revoked token: 401 at once")
    st, body, _ = h.request("DELETE", "/api/v1/tokens/api1", token=adm)
    ok(st == 409 and error_code(body) == "already_revoked", "revoking it again: 409 already_revoked")
    st, body, _ = h.request("DELETE", "/api/v1/tokens/nobody", token=adm)
    ok(st == 404 and error_code(body) == "token_not_found", "DELETE an unknown token: 404")
    st, body, _ = h.request("DELETE", "/api/v1/tokens/%2e%2e%2fetc", token=adm)
    ok(st in (400, 404), f"DELETE /tokens/%2e%2e%2fetc: refused ({st})")
    st, body, _ = h.request("POST", "/api/v1/tokens", {"name": "api1", "role": "viewer"}, token=adm)
    ok(st == 409, "a revoked name stays taken")

    # The CLI against the running daemon.
    rc, out, err = h.smpgwd("token", "create", "live", "--role", "operator")
    live = out.strip().splitlines()[-1] if rc == 0 else ""
    ok(rc == 0, "CLI: token create while the daemon runs")
    st, body, _ = h.request("GET", "/api/v1/firmware", token=live)
    ok(st == 200, "the daemon accepts it at once")
    secrets["live"] = live
    rc, out, err = h.smpgwd("token", "list")
    row = [l for l in out.splitlines() if l.startswith("api1 ")]
    ok(rc == 0 and row and row[0].split()[1] == "viewer" and not row[0].rstrip().endswith("-"),
       "CLI: list shows the token the API created, revoked")
    rc, out, err = h.smpgwd("-s", h.state, "token", "revoke", "live")
    ok(rc == 0, "CLI: token revoke while the daemon runs")
    st, body, _ = h.request("GET", "/api/v1/firmware", token=live)
    ok(st == 401, "the daemon refuses it at once")


def firmware_tests(h, secrets, db_path):
    op, view, adm = secrets["ops"], secrets["viewer"], secrets["admin"]
    with open(os.path.join(IMAGES, "expected.json")) as f:
        expected = json.load(f)
    a_name, b_name = "hash-only-1.2.3+4.bin", "ecdsa-p256-2.0.0.bin"
    a, b = image(a_name), image(b_name)
    a_id, b_id = expected[a_name]["file_sha256"], expected[b_name]["file_sha256"]
    store = os.path.join(h.state, "firmware")

    st, body, _ = upload(h, a, view)
    ok(st == 403 and error_code(body) == "forbidden", "POST /firmware as viewer: 403")
    st, body, _ = upload(h, a, None)
    ok(st == 401, "POST /firmware without a token: 401")
    ok(not os.path.exists(os.path.join(store, a_id)), "nothing stored by refused uploads")

    st, body, hdrs = upload(h, a, op, "?name=first%20build")
    ok(st == 201, f"POST /firmware as operator: 201 ({st})")
    if st != 201:
        diag(repr(body))
        body = {}
    is_eq(body.get("id"), a_id, "id is the file's SHA-256")
    is_eq(body.get("image_hash"), expected[a_name]["image_hash"], "image hash")
    is_eq(body.get("version"), expected[a_name]["version_as_smp_reports"], "version")
    is_eq(body.get("size"), expected[a_name]["size"], "size")
    is_eq(body.get("name"), "first build", "name from ?name=")
    is_eq(hdrs.get("location"), "/api/v1/firmware/" + a_id, "Location header")
    ok(isinstance(body.get("header"), dict) and body["header"].get("hdr_size") == 512,
       "header fields")
    ok(any(t.get("name") == "SHA256" and t.get("len") == 32 for t in body.get("tlvs", [])),
       "TLVs listed")
    with open(os.path.join(store, a_id), "rb") as f:
        ok(f.read() == a, "stored under state/firmware/<sha256> byte for byte")
    first = body

    st, body, _ = upload(h, a, adm, "?name=other")
    ok(st == 200 and body == first, "the same file again (as admin): 200 with the same info")
    st, body, _ = upload(h, b, op)
    ok(st == 201 and body.get("id") == b_id and body.get("version") == "2.0.0",
       "the ECDSA image: 201")
    ok(st == 201 and any(t.get("name") == "ECDSA_SIG" for t in body.get("tlvs", [])),
       "its signature TLV listed")

    bad = bytearray(a)
    bad[2000] ^= 1
    for data, why, what in ((b"\x00" * 1000, "bad magic", "1000 zero bytes"),
                            (bytes(bad), "image hash mismatch", "a payload bit flipped"),
                            (a[:40000], "payload beyond end", "a truncated image"),
                            (b"", "truncated header", "an empty body")):
        st, body, _ = upload(h, data, op)
        ok(st == 400 and error_code(body) == "invalid_image" and why in error_message(body),
           f"{what}: 400 invalid_image ({error_message(body)})")
    st, body, _ = upload(h, a, op, "?name=line%0Abreak")
    ok(st == 400 and error_code(body) == "bad_query", "a name with a control character: 400")
    big = a + b"\xff" * (MAX_BODY + 1 - len(a))
    try:
        st, body, _ = upload(h, big, op)
        ok(st == 413 and error_code(body) == "too_large", f"a body over max_body: 413 ({st})")
    except (ConnectionError, OSError) as e:
        ok(False, f"a body over max_body: 413 (connection failed: {e})")
    entries = sorted(os.listdir(store))
    is_eq(entries, sorted([a_id, b_id]), "the store holds the two images and nothing else")

    st, body, _ = h.request("GET", "/api/v1/firmware", token=view)
    ids = [f.get("id") for f in body.get("firmware", [])] if st == 200 else []
    ok(st == 200 and sorted(ids) == sorted([a_id, b_id]), "GET /firmware as viewer: both")
    ok(ids == [b_id, a_id] or len(set(f["created_at"] for f in body["firmware"])) == 1,
       "newest first")
    st, body, _ = h.request("GET", "/api/v1/firmware/" + a_id, token=view)
    ok(st == 200 and body == first, "GET /firmware/{id}: 200, the same description")
    st, body, _ = h.request("GET", "/api/v1/firmware/" + a_id.upper(), token=view)
    ok(st == 200 and body.get("id") == a_id, "an upper-case id works too")
    st, body, _ = h.request("GET", "/api/v1/firmware/" + "0" * 64, token=view)
    ok(st == 404 and error_code(body) == "firmware_not_found", "unknown id: 404 firmware_not_found")
    st, body, _ = h.request("GET", "/api/v1/firmware/..%2f..%2fsmpgw.db", token=view)
    ok(st in (400, 404), f"a path as id: refused ({st})")
    st, body, _ = h.request("GET", "/api/v1/firmware/smpgw.db", token=view)
    ok(st == 404, "a file name as id: 404")
    st, body, _ = h.request("GET", "/api/v1/firmware", token=None)
    ok(st == 401, "GET /firmware without a token: 401")

    # A rollout that is not finished holds its image. The row stands in for
    # one made through the rollout API (no device needed here).
    db = sqlite3.connect(db_path, timeout=10)
    db.execute("INSERT INTO rollouts (id, firmware, state, created_at, updated_at) "
               "VALUES (990001, ?, 'running', 1, 1)", (b_id,))
    db.commit()
    st, body, _ = h.request("DELETE", "/api/v1/firmware/" + b_id, token=op)
    ok(st == 409 and error_code(body) == "firmware_in_use", "DELETE while a rollout runs: 409 firmware_in_use")
    db.execute("UPDATE rollouts SET state = 'completed' WHERE id = 990001")
    db.commit()
    st, body, _ = h.request("DELETE", "/api/v1/firmware/" + b_id, token=op)
    ok(st == 204, "DELETE once the rollout completed: 204")
    ok(not os.path.exists(os.path.join(store, b_id)), "its file is gone")
    db.close()

    st, body, _ = h.request("DELETE", "/api/v1/firmware/" + a_id, token=view)
    ok(st == 403, "DELETE /firmware/{id} as viewer: 403")
    st, body, _ = h.request("DELETE", "/api/v1/firmware/" + a_id, token=op)
    ok(st == 204 and not body, "DELETE /firmware/{id} as operator: 204")
    st, body, _ = h.request("DELETE", "/api/v1/firmware/" + a_id, token=op)
    ok(st == 404 and error_code(body) == "firmware_not_found", "DELETE again: 404")
    st, body, _ = h.request("GET", "/api/v1/firmware/" + a_id, token=view)
    ok(st == 404, "GET after DELETE: 404")
    st, body, _ = h.request("GET", "/api/v1/firmware", token=view)
    ok(st == 200 and body.get("firmware") == [], "the list is empty")
    is_eq(os.listdir(store), [], "the store directory is empty")

    st, body, _ = upload(h, a, op)
    ok(st == 201, "a removed image can be uploaded again: 201")
    return a_id


def main():
    if not built():
        return skip_all("smpgwd or smp-sim not built")
    h = Harness()
    secrets = {}
    try:
        h.write_config(f"[http]\nmax_body = {MAX_BODY}\n")
        cli_tests(h, secrets)
        gwd = h.start_daemon()
        if not ok(gwd is not None and h.port, "smpgwd started"):
            return done()
        token_route_tests(h, secrets)
        kept = firmware_tests(h, secrets, os.path.join(h.state, "smpgw.db"))

        ok(h.stop_daemon() == 0, "smpgwd stopped cleanly")
        log = h.daemon_log(gwd)
        ok("added by token" in log, "the daemon logged the uploads with the token's name")
        leaked = [n for n, s in secrets.items() if s and s in log]
        ok(not leaked, f"no secret in the daemon's log ({leaked})")

        gwd = h.start_daemon(extra_config=None)
        ok(gwd is not None, "smpgwd started again")
        st, body, _ = h.request("GET", "/api/v1/firmware/" + kept, token=secrets["viewer"])
        ok(st == 200, "tokens and images outlive the restart")
        st, body, _ = h.request("GET", "/api/v1/firmware", token=secrets["api1"])
        ok(st == 401, "revoked tokens stay revoked")
        ok(h.stop_daemon() == 0, "stopped cleanly again")
    finally:
        h.close()
    return done()


if __name__ == "__main__":
    sys.exit(main())
