#!/bin/sh
# test-man: the man pages render cleanly and say what the daemon does.
#  - groff finds no error or warning in smpgwd(8) and smpgwd.conf(5) (-ww);
#  - every long option "smpgwd --help" prints is in smpgwd(8), and the token commands;
#  - every key etc/smpgwd.conf documents is in smpgwd.conf(5), under its section,
#    with the same default.
# Speaks TAP.
set -u
top=${top_srcdir:-$(dirname "$0")/../..}
builddir=${top_builddir:-.}
page8=$top/man/smpgwd.8
page5=$builddir/man/smpgwd.conf.5
n=0
failed=0
ok() { # status name
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/smpgw-man.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

for p in "$page8" "$page5"; do
	if command -v groff >/dev/null 2>&1; then
		groff -man -ww -z "$p" >"$tmp/groff.log" 2>&1
		[ $? -eq 0 ] && [ ! -s "$tmp/groff.log" ]
		ok $? "groff -man -ww: ${p##*/} renders without a warning"
		sed 's/^/# /' "$tmp/groff.log"
	else
		n=$((n + 1))
		echo "ok $n # SKIP groff not installed"
	fi
done

# Options: what --help lists must be in the page (roff writes "-" as "\-").
"$builddir/smpgwd" --help >"$tmp/help" 2>&1
ok $? "smpgwd --help"
for o in $(grep -o -- '--[a-z][a-z-]*' "$tmp/help" | sort -u); do
	esc=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
	grep -q -- "$esc" "$page8"
	ok $? "smpgwd(8) documents $o"
done
for c in "token create" "token list" "token revoke" SIGTERM SIGINT SIGHUP "EXIT STATUS"; do
	grep -q -- "$c" "$page8"
	ok $? "smpgwd(8) documents $c"
done

# Keys: "[section]" headers and "#key = default" lines of etc/smpgwd.conf,
# against ".SS "[section]"" and "\fBkey\fR = \fIdefault\fR" in the page.
awk '
/^\[device / { exit }
/^\[[a-z]+\]$/ { section = substr($0, 2, length($0) - 2); next }
/^#[a-z_]+ =/ {
	key = substr($1, 2); def = $0; sub(/^#[a-z_]+ = ?/, "", def)
	print section, key, def
}' "$top/etc/smpgwd.conf" >"$tmp/keys"
test -s "$tmp/keys"
ok $? "etc/smpgwd.conf lists keys"
awk '
/^\.SH / { in_keys = ($2 == "OPTIONS"); next }
!in_keys { next }
/^\.SS "\[/ { section = $2; gsub(/["\[\]]/, "", section); next }
/^\\fB[a-z_]+\\fR = / {
	line = $0; gsub(/\\-/, "-", line); gsub(/\\e/, "\\", line)
	key = line; sub(/^\\fB/, "", key); sub(/\\fR.*/, "", key)
	def = line; sub(/^[^=]*= /, "", def)
	if (def == "(empty)") def = ""
	else { sub(/^\\fI/, "", def); sub(/\\fR$/, "", def) }
	print section, key, def
}' "$page5" >"$tmp/page-keys"
while read -r section key def; do
	grep -qxF -- "$section $key $def" "$tmp/page-keys" ||
		grep -qxF -- "$section $key $def " "$tmp/page-keys"
	ok $? "smpgwd.conf(5) documents [$section] $key = $def"
done <"$tmp/keys"
# And nothing the page lists is unknown to the file (the file is checked
# against the daemon's table by test-gw-config).
while read -r section key def; do
	grep -q -- "^$section $key" "$tmp/keys"
	ok $? "[$section] $key of smpgwd.conf(5) is in etc/smpgwd.conf"
done <"$tmp/page-keys"

echo "1..$n"
exit $failed
