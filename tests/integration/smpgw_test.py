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
import threading
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
_drains = {}


class _Drain:
    """Reads a pipe to its end in a thread, so a process that logs more than
    a pipe holds never blocks on a test that is busy elsewhere (a stalled
    smpgwd would look like a daemon bug). wait_line() reads from it."""

    def __init__(self, f):
        self.buf = b""
        self.pos = 0
        self.eof = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(f,), daemon=True)
        self.thread.start()

    def _run(self, f):
        while True:
            try:
                chunk = os.read(f.fileno(), 65536)
            except (OSError, ValueError):  # closed by Harness.close()
                chunk = b""
            with self.cond:
                if not chunk:
                    self.eof = True
                else:
                    self.buf += chunk
                self.cond.notify_all()
            if not chunk:
                return

    def wait_line(self, match, timeout):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                while b"\n" in self.buf[self.pos:]:
                    nl = self.buf.index(b"\n", self.pos)
                    text = self.buf[self.pos:nl].decode(errors="replace")
                    self.pos = nl + 1
                    if match(text):
                        return text
                left = end - time.monotonic()
                if self.eof or left <= 0:
                    return None
                self.cond.wait(left)

    def wait_text(self, text, timeout):
        """Waits until text appears anywhere in what was read (or EOF);
        returns everything read so far, consuming nothing."""
        end = time.monotonic() + timeout
        want = text.encode()
        with self.cond:
            while want not in self.buf and not self.eof:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return self.buf.decode(errors="replace")

    def rest(self, timeout=20):
        self.thread.join(timeout)
        with self.cond:
            data = self.buf[self.pos:]
            self.pos = len(self.buf)
            return data


def drain(proc, stream="stderr"):
    """Starts draining proc's stream (a pipe) in the background."""
    _drains[(proc, stream)] = _Drain(getattr(proc, stream))


def log_text(proc, until, timeout):
    """The whole stderr of a drained process (see drain()) once it holds
    until, or after timeout seconds or its end."""
    return _drains[(proc, "stderr")].wait_text(until, timeout)


def wait_line(proc, prefix, timeout, stream="stdout"):
    """Reads proc's stdout (or stderr) until a line starting with (or, for
    stderr, containing) prefix; returns it or None. Lines read past the one
    returned are kept for the next call."""
    key = (proc, stream)
    if key in _drains:
        return _drains[key].wait_line(
            lambda t: t.startswith(prefix) or (stream == "stderr" and prefix in t), timeout)
    f = getattr(proc, stream)
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
        # Read in a thread: sd_notify() blocks once the socket's queue is
        # full (STATUS= every 10 s), as it never does under systemd.
        self.notes = []
        self.notes_cond = threading.Condition()
        threading.Thread(target=self._read_notify, daemon=True).start()
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

    def sim(self, *args, control=False, stderr=False):
        """Starts smp-sim with args (quiet); returns the process. control:
        with --control and a pipe to its stdin (see sim_command); stderr:
        keep its stderr readable (wait_line(p, ..., stream="stderr"), for
        the "dump" lines)."""
        cmd = [SIM, "-q", *args] + (["--control"] if control else [])
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE if stderr else subprocess.DEVNULL,
                             stdin=subprocess.PIPE if control else subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def sim_command(self, proc, command, timeout=10):
        """Sends a --control command ("set latency 20", "dump", "reset 0");
        returns its "OK ..." or "ERR ..." line, None on timeout."""
        proc.stdin.write((command + "\n").encode())
        proc.stdin.flush()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = wait_line(proc, "", end - time.monotonic())
            if line is None:
                return None
            if line.startswith("OK") or line.startswith("ERR"):
                return line
        return None

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
        drain(p)
        if wait_ready:
            line = wait_line(p, "API at http", timeout, stream="stderr")
            if line:
                # After "API at ": the module prefix ("http: ") holds "http" too.
                url = line[line.index("API at ") + len("API at "):].split()[0]
                hostport = url.split("//", 1)[1].split("/", 1)[0]
                self.port = int(hostport.rsplit(":", 1)[1])
            if not self.wait_notify("READY=1", timeout):
                return None
        return p

    def _read_notify(self):
        while True:
            try:
                data = self.notify.recv(4096)
            except OSError:
                return
            with self.notes_cond:
                self.notes.extend(data.decode(errors="replace").splitlines())
                self.notes_cond.notify_all()

    def wait_notify(self, key, timeout):
        """Waits for a notification line starting with key that arrived
        after the previous call's match; returns it or None."""
        end = time.monotonic() + timeout
        with self.notes_cond:
            while True:
                while self.notes:
                    line = self.notes.pop(0)
                    if line.startswith(key):
                        return line
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.notes_cond.wait(left)

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

    def daemon_log(self, proc=None):
        """Once the daemon (proc, default the last one started) has exited:
        the rest of its stderr, with what wait_line() had read past the
        line it returned. For checks on what was logged (never a secret)."""
        p = proc or self.gwd
        if (p, "stderr") in _drains:
            return _drains[(p, "stderr")].rest().decode(errors="replace")
        rest = p.stderr.read() if p.stderr else b""
        return (_pending.pop((p, "stderr"), b"") + rest).decode(errors="replace")

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

    def raw_request(self, data, timeout=10):
        """Sends data (bytes: a whole request, as the client writes it, with
        what http.client refuses to send: raw control characters, bytes
        that are not ASCII) on a fresh connection; returns (status or None,
        the whole answer as bytes) once the server closes or answered one
        complete response."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        got = b""
        try:
            sock.sendall(data)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                sock.settimeout(max(0.01, end - time.monotonic()))
                try:
                    chunk = sock.recv(65536)
                except (TimeoutError, socket.timeout):
                    break
                except OSError:
                    break
                if not chunk:
                    break
                got += chunk
                head, sep, body = got.partition(b"\r\n\r\n")
                if sep:
                    length = None
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            length = int(v.strip())
                    if length is not None and len(body) >= length:
                        break
        finally:
            sock.close()
        status = None
        parts = got.split(b" ", 2)
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
            status = int(parts[1])
        return status, got

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for s in (p.stdin, p.stdout, p.stderr):
                if s:
                    try:
                        s.close()
                    except OSError:
                        pass
        self.notify.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class SseStream:
    """A Server-Sent Events client on its own connection:

        s = SseStream(h, "/api/v1/events?heartbeat=200", token=tok)
        ev = s.next(5)      # {"id": "...", "event": "...", "data": {...}} or
                            # {"comment": "heartbeat"}; None on timeout or close
        s.wait_event(lambda e: e.get("event") == "device.online", 10)
        s.close()

    status and headers are those of the response; a stream that was refused
    has body (parsed JSON when it is) and no events."""

    def __init__(self, h, path, token=None, headers=None, timeout=10):
        hd = {"Accept": "text/event-stream"}
        hd.update(headers or {})
        if token:
            hd["Authorization"] = f"Bearer {token}"
        self.conn = h.connect(timeout)
        self.conn.request("GET", path, headers=hd)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.body = None
        self.closed = False
        if self.status != 200:
            payload = self.resp.read()
            try:
                self.body = json.loads(payload)
            except ValueError:
                self.body = payload
            self.close()

    def next(self, timeout):
        """The next block: an event (id, event, data: parsed JSON when it is)
        or a comment; None when nothing came in time or the stream ended."""
        if self.closed:
            return None
        end = time.monotonic() + timeout
        block = {}
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.conn.sock.settimeout(left)
            try:
                line = self.resp.readline()
            except (TimeoutError, socket.timeout, OSError):
                return None
            if not line:
                self.closed = True
                return None
            text = line.decode(errors="replace").rstrip("\r\n")
            if text == "":
                if block:
                    if "data" in block:
                        try:
                            block["data"] = json.loads(block["data"])
                        except ValueError:
                            pass
                    return block
                continue
            if text.startswith(":"):
                block["comment"] = text[1:].strip()
                continue
            key, _, value = text.partition(":")
            block[key] = value[1:] if value.startswith(" ") else value

    def wait_event(self, pred, timeout):
        """Reads until an event (not a comment) satisfies pred; returns it or
        None. Every block read on the way is kept in self.seen."""
        end = time.monotonic() + timeout
        self.seen = getattr(self, "seen", [])
        while time.monotonic() < end:
            b = self.next(end - time.monotonic())
            if b is None:
                return None
            self.seen.append(b)
            if "event" in b and pred(b):
                return b
        return None

    def close(self):
        self.closed = True
        try:
            self.conn.close()
        except OSError:
            pass


# --- rollouts (tests/integration/test-api-rollouts.py and its siblings) ---

def sim_udp_addresses(h, proc, count, timeout=20):
    """The addresses of the READY udp lines of an smp-sim with --count
    count, in device order; None when they did not all come in time."""
    out = []
    end = time.monotonic() + timeout
    while len(out) < count:
        line = wait_line(proc, "READY udp", max(0, end - time.monotonic()))
        if line is None:
            return None
        out.append(line.split()[2])
    return out


def error_code(body):
    """The "code" of an error answer, or None."""
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def add_firmware(h, path, token, name=None):
    """POSTs an image file to the store; returns its description (or None)."""
    with open(path, "rb") as f:
        data = f.read()
    q = f"?name={name}" if name else ""
    st, body, _ = h.request("POST", "/api/v1/firmware" + q, body=data, token=token,
                            headers={"Content-Type": "application/octet-stream"})
    return body if st in (200, 201) else None


def add_udp_devices(h, addresses, token, labels=None):
    """Registers UDP devices through the API; returns their ids (None for a refusal)."""
    ids = []
    for a in addresses:
        body = {"transport": "udp", "address": a}
        if labels is not None:
            body["labels"] = labels
        st, b, _ = h.request("POST", "/api/v1/devices", body=body, token=token)
        ids.append(b.get("id") if st == 201 else None)
    return ids


# Job states between queued and the end: the job holds its device.
JOB_UNDER_WAY = ("connecting", "uploading", "uploaded", "testing", "resetting", "rebooting",
                 "verifying", "confirming")


def jobs_under_way(h, rid, token):
    """How many of the rollout's jobs are under way now (0 when the list fails)."""
    st, body, _ = h.request("GET", f"/api/v1/jobs?rollout={rid}", token=token)
    return sum(j["state"] in JOB_UNDER_WAY for j in body["jobs"]) if st == 200 else 0


def wait_rollout(h, rid, token, states, timeout):
    """Polls GET /rollouts/{rid} until its state is one of states; returns
    the last view (whatever its state) or None."""
    last = [None]

    def check():
        st, body, _ = h.request("GET", f"/api/v1/rollouts/{rid}", token=token)
        if st == 200:
            last[0] = body
            return body.get("state") in states
        return False
    wait_for(check, timeout, 0.1)
    return last[0]


def running_image(h, dev_id, token):
    """The running image 0 entry (active, else slot 0) the device reports
    when asked now (?refresh=true), or None."""
    st, body, _ = h.request("GET", f"/api/v1/devices/{dev_id}/images?refresh=true", token=token)
    if st != 200:
        return None
    images = [e for e in body["value"]["images"] if e.get("image", 0) == 0]
    for e in images:
        if e.get("active"):
            return e
    return next((e for e in images if e.get("slot") == 0), None)


def job_history_consistent(job):
    """Whether a job's events chain: the first from null, each from the
    previous to, the last to the job's state."""
    ev = job.get("events") or []
    if not ev or ev[0].get("from") is not None:
        return False
    for a, b in zip(ev, ev[1:]):
        if b.get("from") != a.get("to"):
            return False
    return ev[-1].get("to") == job.get("state")
