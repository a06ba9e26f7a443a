#!/bin/sh
# layering: the rules of doc/HACKING.md that a grep can hold.
#  - lib/ includes nothing of ours outside lib/;
#  - the codec files of lib/ are pure: no systemd headers, no sockets, no printing;
#  - no SQL outside db/.
set -u
top=${top_srcdir:-$(dirname "$0")/..}
cd "$top" || exit 99
fail=0

bad=$(grep -n '#include "\(daemon\|api\|db\|tests\)/' lib/*.c lib/*.h 2>/dev/null)
[ -z "$bad" ] || { echo "lib/ includes outside lib/:"; echo "$bad"; fail=1; }

codec="lib/smp-buf.c lib/smp-header.c lib/smp-cbor.c lib/smp-error.c lib/smp-request.c
	lib/smp-response.c lib/smp-os.c lib/smp-image.c lib/smp-stat.c lib/smp-settings.c
	lib/smp-fs.c lib/smp-shell.c lib/smp-enum.c lib/smp-zephyr.c lib/smp-groups.c
	lib/smp-serial.c lib/smp-ble.c lib/smp-chunk.c lib/smp-mcuboot.c lib/smp-json.c"
for f in $codec; do
	[ -f "$f" ] || { echo "missing codec file $f"; fail=1; continue; }
	hdrs=$(sed -n 's/^#include [<"]\([^>"]*\)[>"].*/\1/p' "$f" | tr '\n' ' ')
	bad=$(grep -n -E '#include <(systemd/|sys/socket|netinet/|termios|unistd)|\b(printf|fprintf|puts|syslog|socket|read|write|open)\(' "$f" |
		grep -v -E '(snprintf|vsnprintf)\(')
	[ -z "$bad" ] || { echo "$f is codec code but does I/O or uses systemd:"; echo "$bad"; fail=1; }
	# Headers it includes must be pure too (e.g. none pulling in sd-event).
	for h in $hdrs; do
		case "$h" in
		smp-*.h) grep -q 'systemd/' "lib/$h" && { echo "$f includes lib/$h, which pulls in systemd"; fail=1; } ;;
		esac
	done
done

bad=$(grep -n -i -E '"[[:space:]]*(SELECT|INSERT INTO|UPDATE [a-z_]+ SET|DELETE FROM|CREATE TABLE)[[:space:]]' \
	daemon/*.c api/*.c lib/*.c 2>/dev/null)
[ -z "$bad" ] || { echo "SQL outside db/:"; echo "$bad"; fail=1; }

[ $fail -eq 0 ] && echo "layering rules hold"
exit $fail
