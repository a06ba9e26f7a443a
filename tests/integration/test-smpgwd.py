#!/usr/bin/env python3
"""test-smpgwd: the real daemon against smp-sim over UDP, a serial PTY and BLE.

Starts a private dbus-daemon, one smp-sim process per link, and smpgwd with a
configuration pointing at them; watches the daemon's sqlite database (WAL:
a concurrent reader is fine) for the devices to be discovered and polled;
stops the daemon with SIGTERM, checks it exits cleanly, and starts it again
to see the registry intact. Speaks TAP. Every wait is bounded.
"""
import json
import os
import socket
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

top_srcdir = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
top_builddir = os.environ.get("top_builddir", ".")
SIM = os.path.join(top_builddir, "tests", "sim", "smp-sim")
GWD = os.path.join(top_builddir, "smpgwd")

count = 0
failed = 0


def ok(cond, name):
    global count, failed
    count += 1
    print(("ok" if cond else "not ok") + f" {count} - {name}", flush=True)
    if not cond:
        failed += 1
    return cond


def diag(msg):
    for line in str(msg).splitlines():
        print(f"# {line}", flush=True)


_pending = {}


def wait_line(proc, prefix, timeout):
    """Reads proc's stdout until a line starting with prefix; returns it or None.
    Lines read past the one returned are kept for the next call."""
    end = time.monotonic() + timeout
    buf = _pending.get(proc, b"")
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text.startswith(prefix):
                _pending[proc] = buf
                return text
        if time.monotonic() >= end:
            break
        r, _, _ = select.select([proc.stdout], [], [], max(0, end - time.monotonic()))
        if not r:
            break
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
    _pending[proc] = buf
    return None


def wait_for(fn, timeout, step=0.05):
    """Polls fn() until it returns something true, at most timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def devices(db_path):
    if not os.path.exists(db_path):
        return {}
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
        rows = con.execute(
            "SELECT id, identity, transport, name, online, reported, source FROM devices").fetchall()
        con.close()
    except sqlite3.Error:
        return {}
    return {r[1]: {"id": r[0], "transport": r[2], "name": r[3], "online": r[4],
                   "reported": json.loads(r[5] or "{}"), "source": r[6]} for r in rows}


def main():
    if not (os.access(SIM, os.X_OK) and os.access(GWD, os.X_OK)):
        print("1..0 # SKIP smp-sim or smpgwd not built")
        return 0
    tmp = tempfile.mkdtemp(prefix="smpgwd-it-")
    procs = []
    try:
        dbus = None
        bus_addr = None
        if shutil.which("dbus-daemon"):
            conf = os.path.join(top_srcdir, "tests", "dbus", "session.conf")
            dbus = subprocess.Popen(["dbus-daemon", "--config-file=" + conf, "--print-address",
                                     "--nofork"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
            procs.append(dbus)
            bus_addr = dbus.stdout.readline().decode().strip()
        ok(bus_addr, "private dbus-daemon started")

        def sim(*args):
            p = subprocess.Popen([SIM, "-q", *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            procs.append(p)
            return p

        udp = sim("--udp", "127.0.0.1:0", "--count", "2", "--name-prefix", "udp-",
                  "--drop-rate", "0.05")
        line = wait_line(udp, "READY udp", 10)
        line2 = wait_line(udp, "READY udp", 10)
        ok(line and line2, "UDP simulator ready with two devices")
        udp_addr = line.split()[2] if line else "127.0.0.1:1"
        udp_addr2 = line2.split()[2] if line2 else "127.0.0.1:2"
        link = os.path.join(tmp, "tty-sim0")
        ser = sim("--serial", "--pty-link", link, "--name-prefix", "ser-")
        ok(wait_line(ser, "READY serial", 10), "serial simulator ready")
        ble = sim("--ble", "--ble-bus", bus_addr or "", "--name-prefix", "ble-") if bus_addr else None
        ok(ble is not None and wait_line(ble, "READY ble", 10), "BLE simulator ready")

        state = os.path.join(tmp, "state")
        conf = os.path.join(tmp, "smpgwd.conf")
        with open(conf, "w") as f:
            f.write(f"""[daemon]
state_dir = {state}
[http]
listen = 127.0.0.1:0
[smp]
timeout = 1s
[poll]
interval = 1s
jitter = 10
[serial]
match = nothing-real*
watch = {tmp}/tty-*
watch_interval = 500ms
[ble]
bus = {bus_addr or 'unix:path=/nonexistent'}
[device bench-udp]
transport = udp
address = {udp_addr}
labels = lab,udp
""")
        db_path = os.path.join(state, "smpgw.db")

        # sd_notify: the daemon reports READY=1, STATUS= and STOPPING=1 here.
        notify_path = os.path.join(tmp, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)

        def wait_notify(key, timeout):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                r, _, _ = select.select([notify], [], [], max(0, end - time.monotonic()))
                if not r:
                    break
                for line in notify.recv(4096).decode(errors="replace").splitlines():
                    if line.startswith(key):
                        return line
            return None

        def start_daemon():
            p = subprocess.Popen([GWD, "--config", conf, "--log-level", "info"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(p)
            return p

        gwd = start_daemon()
        ok(wait_notify("READY=1", 20), "sd_notify READY=1 once started")
        status = wait_notify("STATUS=", 5)
        ok(status and "devices online" in status, f"sd_notify STATUS: {status}")

        def all_three():
            d = devices(db_path)
            found = {k: v for k, v in d.items() if v["online"] and "params" in v["reported"]}
            kinds = {v["transport"] for v in found.values()}
            return d if {"udp", "serial", "ble"} <= kinds else None

        d = wait_for(all_three, 30)
        if not ok(d, "UDP, serial and BLE devices discovered, online and polled"):
            diag(json.dumps(devices(db_path), indent=1)[:3000])
            d = devices(db_path)
        udp_dev = d.get(f"udp:{udp_addr}")
        ok(udp_dev and udp_dev["source"] == "config" and udp_dev["name"] == "bench-udp",
           "the configured UDP device keeps its configured name")
        ser_dev = next((v for k, v in d.items() if v["transport"] == "serial"), None)
        ok(ser_dev and ser_dev["name"] == "ser-0", "the serial device is named by its OS info")
        ble_dev = next((v for k, v in d.items() if v["transport"] == "ble"), None)
        ok(ble_dev and ble_dev["name"].startswith("ble-"), "the BLE device is named by BlueZ")
        ok(udp_dev and "image_state" in udp_dev["reported"], "image state polled over lossy UDP")

        # SIGHUP: a device added to the configuration is registered without a restart.
        with open(conf, "a") as f:
            f.write(f"[device hup-udp]\ntransport = udp\naddress = {udp_addr2}\n")
        gwd.send_signal(signal.SIGHUP)
        ok(wait_for(lambda: (devices(db_path).get(f"udp:{udp_addr2}") or {}).get("online"), 15),
           "SIGHUP reloads the configuration: the new [device] is registered and polled")
        ok(gwd.poll() is None, "the daemon keeps running after SIGHUP")

        # Hotplug: the PTY goes away (simulator stops) -> offline; comes back -> online.
        ser.send_signal(signal.SIGTERM)
        ser.wait(10)
        ok(wait_for(lambda: any(v["transport"] == "serial" and not v["online"]
                                for v in devices(db_path).values()), 15),
           "serial device offline once its port disappears")
        ser = sim("--serial", "--pty-link", link, "--name-prefix", "ser-")
        wait_line(ser, "READY serial", 10)
        ok(wait_for(lambda: any(v["transport"] == "serial" and v["online"]
                                for v in devices(db_path).values()), 15),
           "serial device online again when the port comes back")

        # BLE device vanishes with its simulator (org.bluez leaves the bus).
        if ble:
            ble.send_signal(signal.SIGTERM)
            ble.wait(10)
            ok(wait_for(lambda: any(v["transport"] == "ble" and not v["online"]
                                    for v in devices(db_path).values()), 15),
               "BLE device offline when BlueZ drops it")

        # Graceful stop, then restart with the registry intact.
        gwd.send_signal(signal.SIGTERM)
        ok(wait_notify("STOPPING=1", 10), "sd_notify STOPPING=1 on SIGTERM")
        try:
            rc = gwd.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        ok(rc == 0, f"smpgwd exits 0 on SIGTERM (got {rc})")
        before = devices(db_path)
        ok(len(before) >= 3, f"the stopped daemon left {len(before)} devices in its database")
        gwd = start_daemon()
        ok(wait_notify("READY=1", 20), "READY=1 again after the restart")
        ok(wait_for(lambda: (lambda d: d if d.get(f"udp:{udp_addr}", {}).get("online") else None)(
            devices(db_path)), 20), "after a restart the UDP device is back online")
        after = devices(db_path)
        ok(set(before) <= set(after) and all(after[k]["id"] == before[k]["id"] for k in before),
           "registry intact across the restart: same devices, same ids")
        gwd.send_signal(signal.SIGINT)
        try:
            rc = gwd.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        ok(rc == 0, f"smpgwd exits 0 on SIGINT (got {rc})")
        err = gwd.stderr.read().decode(errors="replace")
        ok(all(l[:1] == "<" and l[2:3] == ">" for l in err.splitlines() if l),
           "every log line carries a journald priority prefix")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"1..{count}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
