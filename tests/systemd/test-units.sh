#!/bin/sh
# test-units: what "make install" lays down for systemd, checked by systemd's own tools.
#  - every file lands where configure said (binary, units, sysusers.d, tmpfiles.d, config,
#    man pages, the OpenAPI document);
#  - the installed smpgwd.service and smpgwd.socket pass "systemd-analyze verify"
#    with the installed binary and man pages (a missing man page fails it);
#  - "systemd-analyze security --offline=true" scores the service at most 2.0,
#    and a copy stripped of its sandboxing scores above that (the check can fail);
#  - the installed daemon takes its HTTP socket from socket activation;
#  - the sysusers.d snippet creates the user in dialout and bluetooth, the
#    tmpfiles.d snippet its state directories, in a scratch root.
# Speaks TAP; exit status 77 (skipped) without systemd-analyze.
set -u
builddir=${top_builddir:-.}
max_score=2.0

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "1..0 # SKIP systemd-analyze not found"
	exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/smpgw-units.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0
ok() { # status name
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}
skip() {
	n=$((n + 1))
	echo "ok $n # SKIP $1"
}
diag() { sed 's/^/# /' "$@"; }

dirs=$(make -s --no-print-directory -C "$builddir" print-install-dirs) || exit 99
eval "$dirs"
root=$tmp/root
make -s --no-print-directory -C "$builddir" install DESTDIR="$root" >"$tmp/install.log" 2>&1
r=$?
ok $r "make install DESTDIR=..."
[ $r -eq 0 ] || diag "$tmp/install.log"

unit=$root$systemdsystemunitdir/smpgwd.service
for f in "$root$sbindir/smpgwd" "$unit" "$root$systemdsystemunitdir/smpgwd.socket" \
	"$root$sysusersdir/smpgwd.conf" "$root$tmpfilesdir/smpgwd.conf" \
	"$root$sysconfdir/smpgw/smpgwd.conf" "$root$mandir/man8/smpgwd.8" \
	"$root$mandir/man5/smpgwd.conf.5" "$root$pkgdatadir/openapi.yaml"; do
	test -s "$f"
	ok $? "installed ${f#"$root"}"
done
grep -qx "ExecStart=$sbindir/smpgwd --config $sysconfdir/smpgw/smpgwd.conf" "$unit"
ok $? "ExecStart names the installed binary and configuration"

# verify checks that ExecStart's binary exists: point it into the DESTDIR tree.
mkdir -p "$tmp/units"
sed "s|^ExecStart=$sbindir/|ExecStart=$root$sbindir/|" "$unit" >"$tmp/units/smpgwd.service"
cp "$root$systemdsystemunitdir/smpgwd.socket" "$tmp/units/"
if command -v man >/dev/null 2>&1; then
	man_opt=--man=yes
else
	man_opt=--man=no
fi
MANPATH=$root$mandir systemd-analyze verify $man_opt "$tmp/units/smpgwd.service" \
	"$tmp/units/smpgwd.socket" >"$tmp/verify.log" 2>&1
r=$?
[ $r -eq 0 ] && [ ! -s "$tmp/verify.log" ]
ok $? "systemd-analyze verify $man_opt: clean"
diag "$tmp/verify.log"

score() { # unit file -> the overall exposure figure
	systemd-analyze security --offline=true "$1" 2>/dev/null |
		sed -n 's/^.*Overall exposure level for [^:]*: \([0-9.]*\).*$/\1/p'
}
s=$(score "$tmp/units/smpgwd.service")
echo "# systemd-analyze security --offline=true smpgwd.service: ${s:-no figure}"
[ -n "$s" ] && awk -v s="$s" -v m="$max_score" 'BEGIN { exit !(s <= m) }'
ok $? "exposure level ${s:-?} <= $max_score"

# The same unit without its [Service] sandboxing must score worse than the bar.
mkdir -p "$tmp/bare"
awk '/^\[Service\]/ { svc = 1; print; next } /^\[/ { svc = 0 }
	!svc || /^(Type|ExecStart|ExecReload|User|Group)=/' \
	"$tmp/units/smpgwd.service" >"$tmp/bare/smpgwd.service"
b=$(score "$tmp/bare/smpgwd.service")
echo "# the same without sandboxing: ${b:-no figure}"
[ -n "$b" ] && awk -v s="$b" -v m="$max_score" 'BEGIN { exit !(s > m) }'
ok $? "an unsandboxed copy scores ${b:-?} > $max_score"

grep -q '^ListenStream=127\.0\.0\.1:' "$root$systemdsystemunitdir/smpgwd.socket"
ok $? "the socket listens on loopback"

# Socket activation as smpgwd.socket does it (one listening stream socket,
# Accept=no): the installed daemon adopts the passed socket instead of binding
# its [http] listen, here the very port systemd-socket-activate holds (so a
# daemon that tried to bind would fail with EADDRINUSE).
if command -v systemd-socket-activate >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 &&
	command -v python3 >/dev/null 2>&1; then
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	printf '[daemon]\nstate_dir = %s\n[http]\nlisten = 127.0.0.1:%s\n[ble]\nenabled = no\n[serial]\nenabled = no\n[poll]\ninterval = 0\n' \
		"$tmp/act-state" "$port" >"$tmp/act.conf"
	systemd-socket-activate -l "127.0.0.1:$port" "$root$sbindir/smpgwd" --config "$tmp/act.conf" \
		>"$tmp/act.log" 2>&1 &
	pid=$!
	body=$(curl -s --retry 50 --retry-connrefused --retry-delay 0 --max-time 30 \
		"http://127.0.0.1:$port/api/v1/health")
	case "$body" in *'"status":"ok"'*) r=0 ;; *) r=1 ;; esac
	ok $r "socket activation: the installed smpgwd answers on the passed socket"
	[ $r -eq 0 ] || diag "$tmp/act.log"
	# Waits for its exit, killed after 20 s if it hangs (then the test fails).
	(sleep 20 && kill -KILL $pid 2>/dev/null) &
	bound=$!
	kill -TERM $pid 2>/dev/null
	wait $pid
	status=$?
	kill $bound 2>/dev/null
	if [ $r -eq 0 ]; then
		ok $status "... and stops cleanly on SIGTERM"
	else
		skip "it did not start"
	fi
else
	skip "systemd-socket-activate, curl or python3 not found"
	skip "systemd-socket-activate, curl or python3 not found"
fi

sys=$tmp/sys
mkdir -p "$sys/etc"
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --root="$sys" "$root$sysusersdir/smpgwd.conf" >"$tmp/sysusers.log" 2>&1
	ok $? "systemd-sysusers applies the snippet"
	grep -q '^smpgw:x:[0-9]*:[0-9]*:[^:]*:/var/lib/smpgw:' "$sys/etc/passwd"
	ok $? "user smpgw with home /var/lib/smpgw"
	for g in dialout bluetooth; do
		grep -Eq "^$g:x:[0-9]+:(.*,)?smpgw(,.*)?\$" "$sys/etc/group"
		ok $? "smpgw is in group $g"
	done
else
	for i in 1 2 3 4; do skip "systemd-sysusers not found"; done
fi
if [ "$(id -u)" -eq 0 ] && command -v systemd-tmpfiles >/dev/null 2>&1 &&
	[ -s "$sys/etc/passwd" ]; then
	systemd-tmpfiles --root="$sys" --create "$root$tmpfilesdir/smpgwd.conf" \
		>"$tmp/tmpfiles.log" 2>&1
	ok $? "systemd-tmpfiles applies the snippet"
	uid=$(sed -n 's/^smpgw:x:\([0-9]*\):.*/\1/p' "$sys/etc/passwd")
	for d in "/var/lib/smpgw 750" "/var/lib/smpgw/firmware 700"; do
		set -- $d
		test "$(stat -c '%a %u' "$sys$1" 2>/dev/null)" = "$2 $uid"
		ok $? "$1: mode $2, owned by smpgw"
	done
else
	for i in 1 2 3; do skip "systemd-tmpfiles needs root to chown"; done
fi

echo "1..$n"
exit $failed
