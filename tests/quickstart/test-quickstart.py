#!/usr/bin/env python3
"""test-quickstart: ./quickstart, the README's first command, as a newcomer runs it.

Runs it in the background on the already built tree (SMPGW_DEMO_NO_BUILD=1)
with a free port and a temporary state directory, reads the URL and the token
it prints, waits for /api/v1/health, lists the devices with that token (the
UDP, serial and BLE simulators must all show up), uploads the demo firmware
it generated and rolls it out as its printed example does, then sends SIGINT
and checks a clean exit with no process left behind. A second run on the same
state must reuse the token and find the same devices (idempotent).
Speaks TAP; every wait is bounded.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir",
                                os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "integration"))
import smpgw_test as t  # noqa: E402
from smpgw_test import diag, done, is_eq, ok, wait_for, wait_line  # noqa: E402

QUICKSTART = os.path.join(t.top_srcdir, "quickstart")
MKIMAGE = os.path.join(t.top_builddir, "tests", "sim", "mkimage")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def marked_processes(marker):
    """Pids of the processes whose environment carries marker: everything
    the quick start started, whatever session it moved to."""
    found = []
    needle = f"SMPGW_QUICKSTART_TEST={marker}".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if needle in env and not zombie:
            found.append(int(pid))
    return found


class Demo:
    def __init__(self, state, port):
        self.state = state
        self.port = port
        self.marker = str(uuid.uuid4())
        self.err = open(os.path.join(os.path.dirname(state), "quickstart.err"), "ab")
        env = dict(os.environ, SMPGW_DEMO_NO_BUILD="1", SMPGW_DEMO_PORT=str(port),
                   SMPGW_DEMO_STATE=state, SMPGW_BUILDDIR=os.path.abspath(t.top_builddir),
                   SMPGW_QUICKSTART_TEST=self.marker)
        self.proc = subprocess.Popen([QUICKSTART], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.err,
                                     start_new_session=True)
        self.token = None
        self.lines = []
        self.ready = False
        end = time.monotonic() + 120
        while time.monotonic() < end:
            line = wait_line(self.proc, "", max(0.1, end - time.monotonic()))
            if line is None:
                break
            self.lines.append(line)
            if line.startswith("  Token:"):
                self.token = line.split(":", 1)[1].strip()
            if line.startswith("Press Ctrl-C"):
                self.ready = True
                break
        self.h = t.Harness.__new__(t.Harness)  # only its HTTP helpers
        self.h.port = port

    def request(self, *args, **kw):
        try:
            return self.h.request(*args, **kw)
        except OSError as e:
            return None, str(e), {}

    def devices(self):
        st, body, _ = self.request("GET", "/api/v1/devices?limit=100", token=self.token)
        return body if st == 200 and isinstance(body, dict) else None

    def interrupt(self, timeout=60):
        """SIGINT, as Ctrl-C; returns the exit status (None: it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None
        finally:
            self.proc.stdout.close()
            self.err.close()


def by_transport(listing):
    n = {}
    for d in (listing or {}).get("devices", []):
        n[d.get("transport")] = n.get(d.get("transport"), 0) + 1
    return n


def main():
    if not (t.built() and os.access(MKIMAGE, os.X_OK)):
        return t.skip_all("smpgwd, smp-sim or mkimage not built")
    for tool in ("curl", "setsid"):
        if not shutil.which(tool):
            return t.skip_all(f"{tool} not installed")
    ble = shutil.which("dbus-daemon") is not None
    tmp = tempfile.mkdtemp(prefix="smpgw-qs-")
    state = os.path.join(tmp, "demo-state")
    port = free_port()
    demos = []
    try:
        # --- first run ---
        demo = Demo(state, port)
        demos.append(demo)
        ok(demo.token and demo.token.startswith("smpgw_"), "the quick start prints a token")
        ok(demo.ready, "... and its examples, then waits")
        st, body, _ = demo.request("GET", "/api/v1/health")
        is_eq(st, 200, "GET /api/v1/health answers")
        st, _, _ = demo.request("GET", "/api/v1/devices")
        is_eq(st, 401, "the device list needs the token")

        # The printed stats example, as printed, right away.
        stats = [ln for ln in demo.lines if "/stats?refresh=true" in ln]
        path = stats[0].split("$SMPGW", 1)[1].strip().strip('"') if stats else None
        st, body, _ = demo.request("GET", path, token=demo.token) if path else (None, None, None)
        is_eq(st, 200, f"the printed stats example answers: GET {path}")
        if st != 200:
            diag(body)

        want = {"udp": 2, "serial": 1}
        if ble:
            want["ble"] = 1
        listing = wait_for(lambda: (lambda d: d if d and all(
            by_transport(d).get(k, 0) >= v for k, v in want.items()) else None)(demo.devices()),
            60, step=0.2)
        ok(listing is not None, "the token lists the simulated devices: " +
           ", ".join(f"{v} {k}" for k, v in want.items()))
        if not listing:
            diag(json.dumps(demo.devices()))
        first_total = listing.get("total") if listing else None

        mode = os.stat(os.path.join(state, "token")).st_mode & 0o777
        is_eq(oct(mode), oct(0o600), "the token is kept in a file only its owner reads")

        # The printed upload example: the generated image is valid and newer.
        image = os.path.join(state, "demo-app-1.1.0.bin")
        with open(image, "rb") as f:
            data = f.read()
        st, fw, _ = demo.request("POST", "/api/v1/firmware", body=data, token=demo.token,
                                 headers={"Content-Type": "application/octet-stream"})
        ok(st in (200, 201) and isinstance(fw, dict), "the demo image uploads to the store")
        fw = fw if isinstance(fw, dict) else {}
        is_eq(fw.get("version"), "1.1.0", "... as version 1.1.0")
        is_eq(fw.get("id"), hashlib.sha256(data).hexdigest(), "... with its SHA-256 as id")

        # The printed rollout example, to its end.
        st, ro, _ = demo.request("POST", "/api/v1/rollouts", token=demo.token, body={
            "firmware": fw.get("id"), "selector": {"transport": "udp"},
            "strategy": {"mode": "test-confirm", "max_parallel": 2}})
        ok(st in (200, 201, 202) and isinstance(ro, dict) and "id" in ro,
           "the printed rollout example starts a rollout")
        if not (isinstance(ro, dict) and "id" in ro):
            diag(f"{st}: {ro}")
        rid = ro.get("id") if isinstance(ro, dict) else None

        def finished():
            s, r, _ = demo.request("GET", f"/api/v1/rollouts/{rid}", token=demo.token)
            return r if s == 200 and isinstance(r, dict) and r.get("state") in (
                "completed", "canceled", "failed") else None
        ro = wait_for(finished, 120, step=0.5) if rid is not None else None
        if not ok(ro is not None and ro.get("state") == "completed", "... which completes"):
            diag(json.dumps(ro))

        rc = demo.interrupt()
        is_eq(rc, 0, "Ctrl-C stops the quick start cleanly")
        left = wait_for(lambda: not marked_processes(demo.marker), 10)
        ok(left, "no process is left behind")
        if not left:
            diag(f"left: {marked_processes(demo.marker)}")
        ok(not os.path.lexists(os.path.join(state, "ttySIM0")), "the PTY link is gone")

        # --- second run, same state: same token, same devices ---
        demo = Demo(state, port)
        demos.append(demo)
        is_eq(demo.token, demos[0].token, "a second run reuses the token")
        ok(demo.ready, "... and starts")
        again = wait_for(lambda: (lambda d: d if d and d.get("total") == first_total and all(
            by_transport(d).get(k, 0) >= v for k, v in want.items()) else None)(demo.devices()),
            60, step=0.2)
        ok(again is not None, f"... with the same {first_total} devices, none added")
        if not again:
            diag(json.dumps(demo.devices()))
        is_eq(demo.interrupt(), 0, "... and stops cleanly again")
        ok(wait_for(lambda: not marked_processes(demo.marker), 10), "no process is left behind")
    finally:
        for d in demos:
            if d.proc.poll() is None:
                os.killpg(d.proc.pid, signal.SIGKILL)
                d.proc.wait()
            for pid in marked_processes(d.marker):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        err = os.path.join(tmp, "quickstart.err")
        if t._failed and os.path.exists(err):
            with open(err, errors="replace") as f:
                diag("quickstart's stderr:\n" + f.read()[-3000:])
            log = os.path.join(state, "logs", "smpgwd.log")
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    diag("smpgwd.log:\n" + f.read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    return done()


if __name__ == "__main__":
    sys.exit(main())
