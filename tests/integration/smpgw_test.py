"""smpgw_test: what the black-box tests share: TAP, bounded waits, and a harness
that starts a private dbus-daemon, smp-sim processes and the real smpgwd, and
speaks HTTP to it.

    h = Harness()                 # temp dir, cleaned up by h.close()
    udp = h.sim("--udp", "127.0.0.1:0")
    addr = h.wait_sim(udp, "READY udp").split()[2]
    h.start_daemon(extra_config="[device a]\ntransport = udp\naddress = %s\n" % addr)
    tok = h.token("ops", "operator")
    st, body = h.request("GET", "/api/v1/devices", token=tok)
    h.close()

Every wait is bounded; nothing sleeps to wait for an event it can watch.
"""
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

top_srcdir = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
top_builddir = os.environ.get("top_builddir", ".")
SIM = os.path.join(top_builddir, "tests", "sim", "smp-sim")
GWD = os.path.join(top_builddir, "smpgwd")

_count = 0
_failed = 0


def ok(cond, name):
    global _count, _failed
    _count += 1
    print(("ok" if cond else "not ok") + f" {_count} - {name}", flush=True)
    if not cond:
        _failed += 1
    return cond


def is_eq(got, want, name):
    if not ok(got == want, name):
        diag(f"got:  {got!r}")
        diag(f"want: {want!r}")
        return False
    return True


def diag(msg):
    for line in str(msg).splitlines():
        print(f"# {line}", flush=True)


def done():
    """Prints the plan; returns the exit code for sys.exit()."""
    print(f"1..{_count}", flush=True)
    return 1 if _failed else 0


def skip_all(reason):
    print(f"1..0 # SKIP {reason}", flush=True)
    return 0


def built():
    return os.access(SIM, os.X_OK) and os.access(GWD, os.X_OK)


_pending = {}


def wait_line(proc, prefix, timeout, stream="stdout"):
    """Reads proc's stdout (or stderr) until a line starting with (or, for
    stderr, containing) prefix; returns it or None. Lines read past the one
    returned are kept for the next call."""
    f = getattr(proc, stream)
    key = (proc, stream)
    end = time.monotonic() + timeout
    buf = _pending.get(key, b"")
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text.startswith(prefix) or (stream == "stderr" and prefix in text):
                _pending[key] = buf
                return text
        if time.monotonic() >= end:
            break
        r, _, _ = select.select([f], [], [], max(0, end - time.monotonic()))
        if not r:
            break
        chunk = os.read(f.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
    _pending[key] = buf
    return None


def wait_for(fn, timeout, step=0.05):
    """Polls fn() until it returns something true, at most timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


class Harness:
    def __init__(self, dbus=False):
        self.tmp = tempfile.mkdtemp(prefix="smpgw-it-")
        self.procs = []
        self.gwd = None
        self.port = None
        self.bus = None
        self.state = os.path.join(self.tmp, "state")
        self.conf = os.path.join(self.tmp, "smpgwd.conf")
        self.notify_path = os.path.join(self.tmp, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        if dbus:
            self.start_dbus()

    # --- processes ---
    def start_dbus(self):
        if not shutil.which("dbus-daemon"):
            return None
        conf = os.path.join(top_srcdir, "tests", "dbus", "session.conf")
        p = subprocess.Popen(["dbus-daemon", "--config-file=" + conf, "--print-address",
                              "--nofork"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.bus = p.stdout.readline().decode().strip()
        return self.bus

    def sim(self, *args):
        """Starts smp-sim with args (quiet); returns the process."""
        p = subprocess.Popen([SIM, "-q", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def wait_sim(self, proc, prefix="READY", timeout=10):
        return wait_line(proc, prefix, timeout)

    def write_config(self, extra_config="", listen="127.0.0.1:0"):
        with open(self.conf, "w") as f:
            f.write(f"""[daemon]
state_dir = {self.state}
[http]
listen = {listen}
[smp]
timeout = 1s
[poll]
interval = 0
[serial]
match = nothing-real*
[ble]
bus = {self.bus or 'unix:path=/nonexistent'}
enabled = {'yes' if self.bus else 'no'}
""")
            f.write(extra_config)

    def start_daemon(self, extra_config=None, args=(), env=None, wait_ready=True, timeout=30):
        """Writes the configuration (unless extra_config is None and one
        exists), starts smpgwd and waits for READY=1 and the API address it
        logs. Returns the process."""
        if extra_config is not None or not os.path.exists(self.conf):
            self.write_config(extra_config or "")
        e = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        if env:
            e.update(env)
        p = subprocess.Popen([GWD, "--config", self.conf, "--log-level", "info", *args], env=e,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        self.gwd = p
        if wait_ready:
            line = wait_line(p, "API at http", timeout, stream="stderr")
            if line:
                url = line[line.index("http"):].split()[0]
                hostport = url.split("//", 1)[1].split("/", 1)[0]
                self.port = int(hostport.rsplit(":", 1)[1])
            if not self.wait_notify("READY=1", timeout):
                return None
        return p

    def wait_notify(self, key, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([self.notify], [], [], max(0, end - time.monotonic()))
            if not r:
                break
            for line in self.notify.recv(4096).decode(errors="replace").splitlines():
                if line.startswith(key):
                    return line
        return None

    def stop_daemon(self, sig=signal.SIGTERM, timeout=20):
        """Stops the daemon; returns its exit code (None when it had to be killed)."""
        p = self.gwd
        if not p or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None

    def smpgwd(self, *args, timeout=20):
        """Runs `smpgwd --config CONF ARGS...` to completion (token commands);
        returns (exit code, stdout, stderr)."""
        r = subprocess.run([GWD, "--config", self.conf, *args], capture_output=True,
                           timeout=timeout)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def token(self, name, role):
        """Creates a token with `smpgwd token create`; returns the secret."""
        if not os.path.exists(self.conf):
            self.write_config()
        rc, out, err = self.smpgwd("token", "create", name, "--role", role)
        if rc != 0:
            raise RuntimeError(f"token create failed: {err}")
        return out.strip().splitlines()[-1].strip()

    # --- HTTP ---
    def connect(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, token=None, headers=None, raw=False, timeout=30):
        """One HTTP request on a fresh connection. body: dict/list (sent as
        JSON), bytes or str (sent as is). Returns (status, parsed JSON or
        bytes when raw or not JSON, response headers as a dict)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        c = self.connect(timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            payload = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        if not raw and payload and "json" in hdrs.get("content-type", ""):
            try:
                return r.status, json.loads(payload), hdrs
            except ValueError:
                pass
        return r.status, payload, hdrs

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for s in (p.stdout, p.stderr):
                if s:
                    s.close()
        self.notify.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
