/* bench-daemon: smpgwd with 1,000 idle devices; uploads through its shared client vs link limits */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <nettle/sha2.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "daemon/gw-config.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/macro.h"
#include "lib/smp-chunk.h"
#include "lib/smp-client.h"
#include "lib/smp-image.h"
#include "lib/smp-serial.h"
#include "lib/smp-upload.h"
#include "tests/sim/sim-test.h"
#include "tests/tap.h"

#define IMAGE "tests/data/images/ecdsa-p256-2.0.0.bin"
#define SIM_START_MS 60000
#define UPLOAD_BOUND_MS 120000

static char dir[] = "/tmp/smpgw-bench-XXXXXX";
static bool keep_dir;

static void die(const char *what, int r)
{
	fprintf(stderr, "bench-daemon: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(EXIT_FAILURE);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static const char *builddir(void)
{
	const char *b = getenv("top_builddir");

	return b ? b : ".";
}

/* Starts smp-sim with its stderr (where "dump" writes) going to err_path, or ours. */
static void sim_start(struct sim_proc *p, const char *const *args, const char *err_path)
{
	int saved = -1, fd, r;

	if (err_path) {
		fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			die(err_path, -errno);
		fflush(stderr);
		saved = dup(STDERR_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	r = sim_proc_start(p, SIM_START_MS, args);
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	if (r < 0)
		die("smp-sim did not start", r);
}

/* ======================= (1) the fleet through the real smpgwd ======================= */

struct sample {
	double t; /* s since the daemon was started */
	long rss_kb, hwm_kb, anon_kb;
	double cpu_ms; /* schedstat run time (ns precision), else utime + stime */
	double utime_ms, stime_ms;
	unsigned long long wchar, syscw;
	long long db_bytes, wal_bytes;
	unsigned long long requests; /* answered by smp-sim, every device */
};

static long status_kb(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static unsigned long long io_field(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? 0 : (long long)st.st_size;
}

static void read_proc(pid_t pid, double t0, struct sample *s)
{
	char path[128], text[8192], *p;
	long tick = sysconf(_SC_CLK_TCK);
	unsigned long long ut = 0, st = 0, ns = 0;
	FILE *f;
	size_t n;

	s->t = now_s() - t0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		die(path, -errno);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = 0;
	fclose(f);
	s->rss_kb = status_kb(text, "VmRSS:");
	s->hwm_kb = status_kb(text, "VmHWM:");
	s->anon_kb = status_kb(text, "RssAnon:");

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		die(path, -errno);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = 0;
	fclose(f);
	/* Fields 14 and 15 (utime, stime); the name in field 2 may hold spaces. */
	p = strrchr(text, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		die("cannot parse /proc/PID/stat", -EBADMSG);
	s->utime_ms = (double)ut * 1000.0 / (double)tick;
	s->stime_ms = (double)st * 1000.0 / (double)tick;
	s->cpu_ms = s->utime_ms + s->stime_ms;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%llu", &ns) == 1)
			s->cpu_ms = (double)ns / 1e6;
		fclose(f);
	}

	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	f = fopen(path, "re");
	if (f) {
		n = fread(text, 1, sizeof(text) - 1, f);
		text[n] = 0;
		fclose(f);
		s->wchar = io_field(text, "wchar:");
		s->syscw = io_field(text, "syscw:");
	}
	snprintf(path, sizeof(path), "%s/state/smpgw.db", dir);
	s->db_bytes = file_size(path);
	snprintf(path, sizeof(path), "%s/state/smpgw.db-wal", dir);
	s->wal_bytes = file_size(path);
}

/* smp-sim's "dump": one stderr line per device with its answered requests. */
struct sim_dump {
	struct sim_proc *p;
	FILE *err;
	size_t n;
	unsigned long long *per_dev;
};

static unsigned long long sim_dump(struct sim_dump *d)
{
	unsigned long long total = 0;
	char *line = NULL;
	size_t cap = 0, seen = 0;
	int r;

	r = sim_proc_command(d->p, "dump", 10000);
	if (r < 0)
		die("smp-sim dump", r);
	clearerr(d->err);
	while (getline(&line, &cap, d->err) > 0) {
		const char *q = strstr(line, " requests,"), *b;
		unsigned long idx;
		char *end;

		if (strncmp(line, "smp-sim: sim-", 13) || !q)
			continue;
		idx = strtoul(line + 13, &end, 10);
		if (*end != ':' || idx >= d->n)
			continue;
		for (b = q; b > line && b[-1] >= '0' && b[-1] <= '9'; b--)
			;
		d->per_dev[idx] = strtoull(b, NULL, 10);
		seen++;
	}
	free(line);
	if (seen != d->n)
		die("smp-sim dump: a device is missing", -EBADMSG);
	for (size_t i = 0; i < d->n; i++)
		total += d->per_dev[i];
	return total;
}

/* Waits at most timeout_ms for a notification datagram holding key ("READY=1"). */
static bool notify_wait(int fd, const char *key, int timeout_ms)
{
	double deadline = now_s() + timeout_ms / 1000.0;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		char buf[4096];
		int left = (int)((deadline - now_s()) * 1000);
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return false;
		n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n <= 0)
			continue;
		buf[n] = 0;
		for (char *l = buf; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
			if (!strncmp(l, key, strlen(key)))
				return true;
	}
}

/* Lets time pass for a measurement window, draining notifications meanwhile. */
static void wait_ms(int notify_fd, unsigned ms)
{
	double deadline = now_s() + ms / 1000.0;

	for (;;) {
		struct pollfd pfd = {.fd = notify_fd, .events = POLLIN};
		int left = (int)((deadline - now_s()) * 1000 + 0.5);
		char buf[4096];

		if (left <= 0)
			return;
		if (poll(&pfd, 1, left) > 0)
			(void)!recv(notify_fd, buf, sizeof(buf), MSG_DONTWAIT);
	}
}

static pid_t daemon_start(const char *conf, const char *notify_path, const char *log_path)
{
	char exe[4096], state[512];
	pid_t pid;

	snprintf(exe, sizeof(exe), "%s/smpgwd", builddir());
	snprintf(state, sizeof(state), "%s/state", dir);
	pid = fork();
	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int null = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (log < 0 || null < 0)
			_exit(127);
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(log, STDERR_FILENO);
		setenv("NOTIFY_SOCKET", notify_path, 1);
		execl(exe, exe, "-c", conf, "-s", state, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static unsigned count_log_lines(const char *path, unsigned *ret_warnings)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned n = 0, w = 0;

	if (f) {
		while (getline(&line, &cap, f) > 0) {
			n++;
			if (line[0] == '<' && line[1] >= '0' && line[1] <= '4')
				w++;
		}
		fclose(f);
	}
	free(line);
	*ret_warnings = w;
	return n;
}

/* The request count of one steady device round: the most common non-zero
 * per-device delta over one poll interval (most devices do exactly one
 * round in an interval; a few do none or two with the jitter). */
static unsigned long long round_size(const unsigned long long *a, const unsigned long long *b,
				     size_t n)
{
	unsigned long long best = 0;
	size_t best_count = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned long long d = b[i] - a[i];
		size_t c = 0;

		if (d == 0)
			continue;
		for (size_t k = 0; k < n; k++)
			c += b[k] - a[k] == d;
		if (c > best_count || (c == best_count && d < best)) {
			best = d;
			best_count = c;
		}
	}
	return best;
}

static void print_sample(const char *what, const struct sample *s, const struct sample *prev)
{
	printf("  %-30s %7.1f %8.1f %8.1f %9.0f %9llu %9llu %10llu %9lld %9lld\n", what, s->t,
	       s->rss_kb / 1024.0, s->anon_kb / 1024.0, s->cpu_ms - (prev ? prev->cpu_ms : 0),
	       s->requests - (prev ? prev->requests : 0), s->syscw - (prev ? prev->syscw : 0),
	       s->wchar - (prev ? prev->wchar : 0), s->db_bytes, s->wal_bytes);
}

static void bench_fleet(unsigned n_dev, unsigned interval_s, unsigned jitter, unsigned rounds)
{
	char conf[512], notify[512], log[512], simerr[512], count[32], line[256];
	const char *args[] = {"--count", count, "--udp", "127.0.0.1:0", "-q", NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sample s_ready, s_first, s0, s_end, *per = NULL;
	unsigned long long *base, *cur, *after1 = NULL, r_size;
	struct sim_proc sp;
	struct sim_dump dump;
	double t0, t_ready, t_first, dev_rounds, fleet_rounds, t_stop;
	unsigned log_lines, warnings;
	pid_t pid;
	FILE *f;
	int nfd, status, r;

	snprintf(count, sizeof(count), "%u", n_dev);
	snprintf(simerr, sizeof(simerr), "%s/sim-fleet.err", dir);
	sim_start(&sp, args, simerr);
	if (sp.n_ready < n_dev)
		die("smp-sim: fewer READY lines than devices", -EBADMSG);

	snprintf(conf, sizeof(conf), "%s/smpgwd.conf", dir);
	f = fopen(conf, "we");
	if (!f)
		die(conf, -errno);
	fprintf(f,
		"[daemon]\nlog_level = warning\n[ble]\nenabled = no\n[serial]\nenabled = no\n"
		"[poll]\ninterval = %us\njitter = %u\n",
		interval_s, jitter);
	for (unsigned i = 0; i < n_dev; i++) {
		char *addr = sim_proc_ready(&sp, "udp", i, NULL);

		if (!addr)
			die("smp-sim: no address", -EBADMSG);
		fprintf(f, "\n[device dev-%u]\ntransport = udp\naddress = %s\n", i, addr);
		free(addr);
	}
	if (fclose(f) != 0)
		die(conf, -errno);

	snprintf(notify, sizeof(notify), "%s/notify", dir);
	if (strlen(notify) >= sizeof(sa.sun_path))
		die("notify socket path", -ENAMETOOLONG);
	memcpy(sa.sun_path, notify, strlen(notify) + 1);
	nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (nfd < 0 || bind(nfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("notify socket", -errno);
	snprintf(log, sizeof(log), "%s/smpgwd.log", dir);

	dump.p = &sp;
	dump.n = n_dev;
	dump.err = fopen(simerr, "re");
	base = calloc(n_dev, sizeof(*base));
	cur = calloc(n_dev, sizeof(*cur));
	after1 = calloc(n_dev, sizeof(*after1));
	per = calloc(rounds, sizeof(*per));
	if (!dump.err || !base || !cur || !after1 || !per)
		die("setup", -ENOMEM);

	t0 = now_s();
	pid = daemon_start(conf, notify, log);
	if (!notify_wait(nfd, "READY=1", 120000))
		die("smpgwd sent no READY=1 within 120 s", -ETIMEDOUT);
	t_ready = now_s() - t0;
	read_proc(pid, t0, &s_ready);
	dump.per_dev = cur;
	s_ready.requests = sim_dump(&dump);

	/* The first round of every device (a full one: params and OS info too)
	 * happens within [poll] jitter of the start; it is over once every
	 * device answered something and the sim saw no request for 500 ms. */
	for (unsigned long long last = ~0ULL;;) {
		unsigned long long total;
		bool all = true;

		wait_ms(nfd, 500);
		total = sim_dump(&dump);
		for (unsigned i = 0; i < n_dev && all; i++)
			all = cur[i] > 0;
		if (all && total == last)
			break;
		last = total;
		if (now_s() - t0 > 120 + interval_s)
			die("the first poll round did not end within 120 s", -ETIMEDOUT);
	}
	t_first = now_s() - t0;
	read_proc(pid, t0, &s_first);
	s_first.requests = sim_dump(&dump);

	/* Steady state: every device polled once per interval, on average. */
	s0 = s_first;
	memcpy(base, cur, n_dev * sizeof(*cur));
	for (unsigned k = 0; k < rounds; k++) {
		wait_ms(nfd, interval_s * 1000);
		read_proc(pid, t0, &per[k]);
		per[k].requests = sim_dump(&dump);
		if (k == 0)
			memcpy(after1, cur, n_dev * sizeof(*cur));
	}
	s_end = per[rounds - 1];
	r_size = round_size(base, after1, n_dev);
	if (r_size == 0)
		die("no device was polled in the first interval", -EBADMSG);

	t_stop = now_s();
	kill(pid, SIGTERM);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (now_s() - t_stop > 20) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			printf("  smpgwd did not stop within 20 s of SIGTERM: killed\n");
			break;
		}
		wait_ms(nfd, 10);
	}
	t_stop = now_s() - t_stop;
	log_lines = count_log_lines(log, &warnings);

	dev_rounds = (double)(s_end.requests - s0.requests) / (double)r_size;
	fleet_rounds = dev_rounds / n_dev;

	printf("(1) %u idle UDP devices through smpgwd (one smp-sim --count %u process, loopback),\n"
	       "    [poll] interval %u s, jitter %u%%; %u intervals measured after the first round\n",
	       n_dev, n_dev, interval_s, jitter, rounds);
	printf("  %-30s %7s %8s %8s %9s %9s %9s %10s %9s %9s\n", "point", "t s", "RSS MiB",
	       "anon MiB", "CPU ms", "sim reqs", "wsyscalls", "wbytes", "db B", "wal B");
	print_sample("READY=1 (registered)", &s_ready, NULL);
	print_sample("first (full) round done", &s_first, &s_ready);
	for (unsigned k = 0; k < rounds; k++) {
		snprintf(line, sizeof(line), "after interval %u", k + 1);
		print_sample(line, &per[k], k ? &per[k - 1] : &s0);
	}
	printf("  (CPU, sim reqs, wsyscalls, wbytes: since the line above;"
	       " RSS: VmRSS; peak VmHWM %.1f MiB)\n",
	       s_end.hwm_kb / 1024.0);
	printf("  READY=1 after %.2f s; first round over at %.2f s;"
	       " SIGTERM to exit %.2f s, exit status %d;\n"
	       "  daemon log: %u lines, %u at warning or above\n",
	       t_ready, t_first, t_stop, WIFEXITED(status) ? WEXITSTATUS(status) : -1, log_lines,
	       warnings);
	printf("  a steady device round = %llu requests"
	       " (most common per-device count in the first interval)\n",
	       r_size);
	printf("  device rounds in %.1f s: %.0f = %.3f fleet rounds\n", s_end.t - s0.t, dev_rounds,
	       fleet_rounds);
	printf("  CPU per fleet poll round (%u devices): %.1f ms = %.3f ms per device round"
	       "  (user %.0f ms + system %.0f ms over the window)\n",
	       n_dev, (s_end.cpu_ms - s0.cpu_ms) / fleet_rounds,
	       (s_end.cpu_ms - s0.cpu_ms) / dev_rounds, s_end.utime_ms - s0.utime_ms,
	       s_end.stime_ms - s0.stime_ms);
	printf("  CPU of start-up + registration: %.1f ms; of the first (full) round: %.1f ms\n",
	       s_ready.cpu_ms, s_first.cpu_ms - s_ready.cpu_ms);
	printf("  sqlite writes per fleet round (proxy: write-family syscalls and bytes of the daemon,\n"
	       "  /proc/PID/io syscw and wchar; UDP goes through send(2), not counted):"
	       " %.0f syscalls, %.0f KiB\n",
	       (double)(s_end.syscw - s0.syscw) / fleet_rounds,
	       (double)(s_end.wchar - s0.wchar) / fleet_rounds / 1024.0);
	printf("  RSS after %u intervals %.1f MiB, peak %.1f MiB: target <= 20 MiB %s\n", rounds,
	       s_end.rss_kb / 1024.0, s_end.hwm_kb / 1024.0,
	       s_end.hwm_kb <= 20 * 1024 ? "met" : "MISSED");

	r = sim_proc_stop(&sp, SIGTERM, 10000);
	if (r != 0)
		printf("  smp-sim exit status %d\n", r);
	fclose(dump.err);
	close(nfd);
	unlink(notify);
	free(base);
	free(cur);
	free(after1);
	free(per);
	fflush(stdout);
}

/* ======================= (2) uploads through the shared client ======================= */

/* A one-way link in each direction between the gateway and smp-sim, run in
 * its own process: each datagram is serialised at `bandwidth` bytes of UDP
 * payload per second behind those before it (a FIFO, as a router queue),
 * then delivered `delay_us` later. smp-sim's own --bandwidth paces only the
 * device's answers, so it cannot limit an upload. */
struct relay_pkt {
	uint64_t due;
	size_t len;
	uint8_t data[];
};

#define RELAY_QUEUE 1024

struct relay_dir {
	struct relay_pkt *q[RELAY_QUEUE];
	size_t head, len;
	uint64_t wire_free;
	unsigned long long pkts, drops;
	size_t max_len;
};

/* A link emulator process between the gateway and smp-sim. */
struct relay {
	pid_t pid;
	int ctl;	      /* parent's end: shut down to stop the relay, then read its counts */
	char gw_address[128]; /* what the gateway opens: host:port, or a PTY path */
};

static void relay_push(struct relay_dir *d, const uint8_t *buf, size_t len, uint64_t bandwidth,
		       uint64_t delay_us)
{
	uint64_t now = now_us(), start = MAX(now, d->wire_free);
	struct relay_pkt *p;

	if (d->len == RELAY_QUEUE || !(p = malloc(sizeof(*p) + len))) {
		d->drops++;
		return;
	}
	d->wire_free = start + (bandwidth ? len * 1000000ULL / bandwidth : 0);
	p->due = d->wire_free + delay_us;
	p->len = len;
	memcpy(p->data, buf, len);
	d->q[(d->head + d->len++) % RELAY_QUEUE] = p;
	d->pkts++;
	d->max_len = MAX(d->max_len, d->len);
}

static void relay_flush(struct relay_dir *d, int fd, const struct sockaddr_in *to)
{
	uint64_t now = now_us();

	while (d->len && d->q[d->head]->due <= now) {
		struct relay_pkt *p = d->q[d->head];

		if (to)
			(void)!sendto(fd, p->data, p->len, 0, (const struct sockaddr *)to,
				      sizeof(*to));
		else
			(void)!send(fd, p->data, p->len, 0);
		free(p);
		d->head = (d->head + 1) % RELAY_QUEUE;
		d->len--;
	}
}

static __attribute__((noreturn)) void relay_main(int gw_fd, int dev_fd, int ctl, uint64_t bandwidth,
						 uint64_t delay_us)
{
	static struct relay_dir up, down; /* gateway -> device, device -> gateway */
	static uint8_t buf[65536];
	struct sockaddr_in peer = {0};
	bool have_peer = false;
	char report[256];
	int n;

	for (;;) {
		struct pollfd pfd[3] = {
		    {.fd = gw_fd, .events = POLLIN},
		    {.fd = dev_fd, .events = POLLIN},
		    {.fd = ctl, .events = POLLIN},
		};
		uint64_t next = UINT64_MAX, now = now_us();
		struct timespec ts, *tsp = NULL;

		if (up.len)
			next = up.q[up.head]->due;
		if (down.len)
			next = MIN(next, down.q[down.head]->due);
		if (next != UINT64_MAX) {
			uint64_t wait = next > now ? next - now : 0;

			ts.tv_sec = (time_t)(wait / 1000000);
			ts.tv_nsec = (long)(wait % 1000000) * 1000;
			tsp = &ts;
		}
		if (ppoll(pfd, 3, tsp, NULL) < 0 && errno != EINTR)
			_exit(1);
		if (pfd[2].revents)
			break;
		for (;;) {
			socklen_t sl = sizeof(peer);
			ssize_t k = recvfrom(gw_fd, buf, sizeof(buf), MSG_DONTWAIT,
					     (struct sockaddr *)&peer, &sl);

			if (k < 0)
				break;
			have_peer = true;
			relay_push(&up, buf, (size_t)k, bandwidth, delay_us);
		}
		for (;;) {
			ssize_t k = recv(dev_fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (k < 0)
				break;
			relay_push(&down, buf, (size_t)k, bandwidth, delay_us);
		}
		relay_flush(&up, dev_fd, NULL);
		if (have_peer)
			relay_flush(&down, gw_fd, &peer);
	}
	n = snprintf(report, sizeof(report), "%llu %llu %zu %llu %llu %zu\n", up.pkts, up.drops,
		     up.max_len, down.pkts, down.drops, down.max_len);
	(void)!write(ctl, report, (size_t)n);
	_exit(0);
}

static void relay_start(struct relay *rl, const char *sim_addr, uint64_t bandwidth,
			unsigned delay_ms)
{
	struct sockaddr_in dev = {.sin_family = AF_INET}, gw = {.sin_family = AF_INET};
	socklen_t sl = sizeof(gw);
	const char *colon = strrchr(sim_addr, ':');
	char host[64];
	int gw_fd, dev_fd, sv[2];

	if (!colon || (size_t)(colon - sim_addr) >= sizeof(host))
		die("sim address", -EINVAL);
	memcpy(host, sim_addr, (size_t)(colon - sim_addr));
	host[colon - sim_addr] = 0;
	if (inet_pton(AF_INET, host, &dev.sin_addr) != 1)
		die("sim address", -EINVAL);
	dev.sin_port = htons((uint16_t)atoi(colon + 1));

	gw.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	gw_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	dev_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (gw_fd < 0 || dev_fd < 0 || bind(gw_fd, (struct sockaddr *)&gw, sizeof(gw)) < 0 ||
	    getsockname(gw_fd, (struct sockaddr *)&gw, &sl) < 0 ||
	    connect(dev_fd, (struct sockaddr *)&dev, sizeof(dev)) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("relay sockets", -errno);
	snprintf(rl->gw_address, sizeof(rl->gw_address), "127.0.0.1:%u", ntohs(gw.sin_port));
	rl->pid = fork();
	if (rl->pid < 0)
		die("fork", -errno);
	if (rl->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		relay_main(gw_fd, dev_fd, sv[1], bandwidth, (uint64_t)delay_ms * 1000);
	}
	close(sv[1]);
	close(gw_fd);
	close(dev_fd);
	rl->ctl = sv[0];
}

/* What went through a link emulator, each way (to the device, to the gateway):
 * datagrams or bytes, drops, the deepest queue (datagrams or bytes). */
struct relay_counts {
	unsigned long long units[2], drops[2], deepest[2];
};

/* Stops the relay and reads its counts. */
static void relay_stop(struct relay *rl, struct relay_counts *ret)
{
	struct pollfd pfd = {.fd = rl->ctl, .events = POLLIN};
	char report[256];
	ssize_t n = 0;
	int status;

	shutdown(rl->ctl, SHUT_WR);
	if (poll(&pfd, 1, 5000) > 0)
		n = read(rl->ctl, report, sizeof(report) - 1);
	report[n > 0 ? n : 0] = 0;
	if (sscanf(report, "%llu %llu %llu %llu %llu %llu", &ret->units[0], &ret->drops[0],
		   &ret->deepest[0], &ret->units[1], &ret->drops[1], &ret->deepest[1]) != 6)
		die("the link emulator did not report", -EBADMSG);
	close(rl->ctl);
	kill(rl->pid, SIGKILL);
	waitpid(rl->pid, &status, 0);
}

/* An 8N1 serial line between two PTYs, in its own process: a byte written on
 * one side reaches the other once its 10 bits have left the wire behind
 * those before it (each direction has its own wire: a UART is full duplex).
 * Bytes are handed over in batches at least LINE_BATCH_NS apart, so each
 * arrives at most that much after its wire time: never early. */
#define LINE_BATCH_NS 500000ULL

struct line_seg {
	struct line_seg *next;
	uint64_t start_ns; /* its first bit on the wire */
	size_t len, off;
	uint8_t data[];
};

struct line_dir {
	struct line_seg *head, *tail;
	uint64_t wire_free_ns;
	unsigned long long bytes;
	size_t queued, max_queued;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void line_push(struct line_dir *d, const uint8_t *buf, size_t n, uint64_t byte_ns)
{
	struct line_seg *s = malloc(sizeof(*s) + n);
	uint64_t now = now_ns();

	if (!s)
		_exit(1);
	s->next = NULL;
	s->start_ns = MAX(now, d->wire_free_ns);
	s->len = n;
	s->off = 0;
	memcpy(s->data, buf, n);
	d->wire_free_ns = s->start_ns + n * byte_ns;
	if (d->tail)
		d->tail->next = s;
	else
		d->head = s;
	d->tail = s;
	d->bytes += n;
	d->queued += n;
	d->max_queued = MAX(d->max_queued, d->queued);
}

/* Writes the bytes whose last bit has arrived; returns when the next one
 * arrives (0: nothing queued). */
static uint64_t line_pump(struct line_dir *d, int fd, uint64_t byte_ns)
{
	uint64_t now = now_ns();

	while (d->head) {
		struct line_seg *s = d->head;
		size_t arrived = now > s->start_ns
				     ? (size_t)MIN((now - s->start_ns) / byte_ns, (uint64_t)s->len)
				     : 0;

		if (arrived > s->off) {
			ssize_t w = write(fd, s->data + s->off, arrived - s->off);

			if (w < 0)
				return now + LINE_BATCH_NS; /* the PTY is full: try again */
			s->off += (size_t)w;
			d->queued -= (size_t)w;
			if (s->off < arrived)
				return now + LINE_BATCH_NS;
		}
		if (s->off < s->len)
			return s->start_ns + (s->off + 1) * byte_ns;
		d->head = s->next;
		if (!d->head)
			d->tail = NULL;
		free(s);
	}
	return 0;
}

static __attribute__((noreturn)) void line_main(int gw_fd, int dev_fd, int ctl, unsigned baud)
{
	static struct line_dir up, down; /* gateway -> device, device -> gateway */
	uint64_t byte_ns = 10ULL * 1000000000ULL / baud;
	uint8_t buf[4096];
	char report[256];
	int n;

	for (;;) {
		struct pollfd pfd[3] = {
		    {.fd = gw_fd, .events = POLLIN},
		    {.fd = dev_fd, .events = POLLIN},
		    {.fd = ctl, .events = POLLIN},
		};
		uint64_t a = line_pump(&up, dev_fd, byte_ns), b = line_pump(&down, gw_fd, byte_ns);
		uint64_t next = a && b ? MIN(a, b) : a ? a : b, now = now_ns();
		struct timespec ts, *tsp = NULL;
		ssize_t k;

		if (next) {
			uint64_t wait = MAX(next > now ? next - now : 0, LINE_BATCH_NS);

			ts.tv_sec = (time_t)(wait / 1000000000ULL);
			ts.tv_nsec = (long)(wait % 1000000000ULL);
			tsp = &ts;
		}
		if (ppoll(pfd, 3, tsp, NULL) < 0 && errno != EINTR)
			_exit(1);
		if (pfd[2].revents)
			break;
		/* EIO: no one has the other end open yet. */
		while ((k = read(gw_fd, buf, sizeof(buf))) > 0)
			line_push(&up, buf, (size_t)k, byte_ns);
		while ((k = read(dev_fd, buf, sizeof(buf))) > 0)
			line_push(&down, buf, (size_t)k, byte_ns);
	}
	n = snprintf(report, sizeof(report), "%llu 0 %zu %llu 0 %zu\n", up.bytes, up.max_queued,
		     down.bytes, down.max_queued);
	(void)!write(ctl, report, (size_t)n);
	_exit(0);
}

static int open_raw(const char *path)
{
	struct termios t;
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &t) < 0) {
		close(fd);
		return -errno;
	}
	cfmakeraw(&t);
	if (tcsetattr(fd, TCSANOW, &t) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* Opens smp-sim's PTY as the gateway would, and gives the gateway a new PTY
 * whose other end goes through the line. */
static void line_start(struct relay *rl, const char *sim_pty, unsigned baud)
{
	int dev_fd, master, keep, sv[2];
	const char *name;

	dev_fd = open_raw(sim_pty);
	if (dev_fd < 0)
		die(sim_pty, dev_fd);
	master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || !(name = ptsname(master)))
		die("posix_openpt", -errno);
	snprintf(rl->gw_address, sizeof(rl->gw_address), "%s", name);
	/* Held open so that the master never sees a hang-up between the gateway's opens. */
	keep = open_raw(rl->gw_address);
	if (keep < 0)
		die(rl->gw_address, keep);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", -errno);
	rl->pid = fork();
	if (rl->pid < 0)
		die("fork", -errno);
	if (rl->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		line_main(master, dev_fd, sv[1], baud);
	}
	close(sv[1]);
	close(master);
	close(dev_fd);
	close(keep);
	rl->ctl = sv[0];
}

/* ---- the manager, as smpgwd builds it, with the modules an upload needs ---- */

static struct gw_manager m;
static unsigned db_seq;

static void mgr_start(void)
{
	char path[512], err[256] = "";
	int r;

	memset(&m, 0, sizeof(m));
	if ((r = sd_event_new(&m.event)) < 0 || (r = gw_config_init(&m.config)) < 0)
		die("manager", r);
	snprintf(path, sizeof(path), "%s/upload-%u.db", dir, db_seq++);
	r = db_open(path, &m.db, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "bench-daemon: %s\n", err);
		exit(EXIT_FAILURE);
	}
	if ((r = gw_registry_new(&m, &m.registry)) < 0 || (r = gw_devices_new(&m, &m.devices)) < 0)
		die("manager modules", r);
}

static void mgr_stop(void)
{
	m.devices = gw_devices_free(m.devices);
	m.registry = gw_registry_free(m.registry);
	m.db = db_close(m.db);
	while (sd_event_run(m.event, 0) > 0)
		;
	m.event = sd_event_unref(m.event);
	gw_config_clear(&m.config);
}

struct get {
	bool done;
	int error;
	struct smp_client *c;
};

static void on_get(struct gw_devices *ds, int error, struct smp_client *c, void *userdata)
{
	struct get *g = userdata;

	g->done = true;
	g->error = error;
	g->c = smp_client_ref(c);
}

struct upload {
	bool done;
	int error;
	struct smp_upload_result res;
	struct smp_client *c;
	uint64_t t_start, t_first, t_done; /* µs */
	uint64_t first_off;
	/* chunks in flight, sampled after every dispatch: max and time integral */
	unsigned max_in_flight;
	uint64_t last_t;
	unsigned last_in_flight;
	double in_flight_us;
};

static void on_progress(uint64_t off, uint64_t total, void *userdata)
{
	struct upload *u = userdata;

	if (!u->t_first) {
		u->t_first = now_us();
		u->first_off = off;
	}
}

static void on_done(int error, const struct smp_upload_result *res, void *userdata)
{
	struct upload *u = userdata;

	u->t_done = now_us();
	u->done = true;
	u->error = error;
	u->res = *res;
}

static int on_post(sd_event_source *s, void *userdata)
{
	struct upload *u = userdata;
	uint64_t t = now_us();

	if (u->done || !u->t_start)
		return 0;
	u->in_flight_us += (double)u->last_in_flight * (double)(t - u->last_t);
	u->last_t = t;
	u->last_in_flight = smp_client_get_in_flight(u->c);
	u->max_in_flight = MAX(u->max_in_flight, u->last_in_flight);
	return 0;
}

/* What the link must carry: the exact upload requests for the chunk size the
 * client picks (smp-upload's rule: fill the budget). */
struct plan {
	size_t budget;
	unsigned chunks;
	size_t first_data;	    /* data bytes of the first chunk */
	size_t full_data, full_pkt; /* a full later chunk: data bytes, packet bytes */
	uint64_t pkt_bytes;	    /* SMP packets, headers included */
	uint64_t wire_bytes;	    /* serial: console-framed bytes; UDP: = pkt_bytes */
	uint64_t wire_after_first;  /* the same without the first chunk */
};

static void plan_upload(size_t budget, uint64_t size, const uint8_t sha[32], bool serial,
			struct plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	pl->budget = budget;
	for (uint64_t off = 0; off < size;) {
		struct smp_image_upload_args a = {
		    .off = off,
		    .len = size,
		    .image = 0,
		    .has_image = true,
		    .sha = sha,
		    .sha_len = 32,
		    .upgrade = false,
		    .has_upgrade = true,
		};
		size_t fixed = smp_image_upload_packet_size(&a);
		size_t n = (size_t)MIN((uint64_t)smp_chunk_max_data(budget, fixed), size - off);
		size_t pkt = fixed - 1 + smp_chunk_bstr_head(n) + n;
		size_t wire = serial ? smp_serial_encoded_size(pkt, 0) : pkt;

		if (n == 0)
			die("no data fits the budget", -EMSGSIZE);
		if (off == 0) {
			pl->first_data = n;
		} else {
			if (pl->full_data == 0) {
				pl->full_data = n;
				pl->full_pkt = pkt;
			}
			pl->wire_after_first += wire;
		}
		pl->pkt_bytes += pkt;
		pl->wire_bytes += wire;
		pl->chunks++;
		off += n;
	}
}

struct up_case {
	const char *label;
	bool serial;
	const char *const *sim_args;
	bool relay;	    /* a link emulator process in between */
	uint64_t bandwidth; /* UDP relay: bytes of payload per second each way */
	unsigned delay_ms;  /* UDP relay: one way */
	unsigned line_baud; /* serial line emulator: 8N1 baud */
};

struct up_out {
	struct plan pl;
	struct upload u;
	struct smp_client_stats st;
	unsigned buf_count, window, bulk;
	size_t buf_size;
	struct relay_counts link;
	double t_total, t_data; /* s */
};

static void run_upload(const struct up_case *uc, const uint8_t *img, size_t size,
		       const uint8_t sha[32], struct up_out *o)
{
	struct sim_proc sp;
	struct relay rl = {0};
	char *addr, identity[512];
	struct gw_device_spec spec = {.source = GW_SOURCE_API};
	struct gw_device *d = NULL;
	struct get g = {0};
	struct smp_upload_source src = {.fd = -1, .data = img, .size = size, .has_sha = true};
	struct smp_upload_options opts;
	struct smp_client_stats st0;
	sd_event_source *post = NULL;
	double deadline;
	int r;

	memset(o, 0, sizeof(*o));
	sim_start(&sp, uc->sim_args, NULL);
	addr = sim_proc_ready(&sp, uc->serial ? "serial" : "udp", 0, NULL);
	if (!addr)
		die("smp-sim: no address", -EBADMSG);
	if (uc->relay) {
		if (uc->serial)
			line_start(&rl, addr, uc->line_baud);
		else
			relay_start(&rl, addr, uc->bandwidth, uc->delay_ms);
		free(addr);
		addr = strdup(rl.gw_address);
		if (!addr)
			die("strdup", -ENOMEM);
	}

	mgr_start();
	spec.transport = uc->serial ? GW_TRANSPORT_SERIAL : GW_TRANSPORT_UDP;
	snprintf(identity, sizeof(identity), "%s:%s", uc->serial ? "tty" : "udp", addr);
	spec.identity = identity;
	spec.address = addr;
	r = gw_registry_upsert(m.registry, &spec, &d);
	if (r < 0)
		die("registry", r);
	gw_registry_set_online(m.registry, d, true);

	r = gw_devices_get_client(m.devices, d, on_get, &g, NULL, NULL);
	if (r < 0)
		die("gw_devices_get_client", r);
	if (!sim_test_run_until(m.event, &g.done, 10000) || g.error < 0)
		die("no client", g.done ? g.error : -ETIMEDOUT);
	gw_devices_hold(m.devices, d);

	smp_upload_options_init(&opts);
	opts.first_timeout_ms = m.config.upload_first_timeout_ms;
	opts.check_state = false;
	memcpy(src.sha, sha, 32);
	o->u.c = g.c;
	r = sd_event_add_post(m.event, &post, on_post, &o->u);
	if (r < 0)
		die("post source", r);
	(void)sd_event_source_set_description(post, "bench-in-flight");
	smp_client_get_stats(g.c, &st0);

	o->u.t_start = o->u.last_t = now_us();
	r = smp_image_upload(g.c, &src, &opts, on_progress, on_done, &o->u, NULL, NULL);
	if (r < 0)
		die("smp_image_upload", r);
	deadline = now_s() + UPLOAD_BOUND_MS / 1000.0;
	while (!o->u.done && now_s() < deadline)
		if ((r = sd_event_run(m.event, 100000)) < 0)
			die("sd_event_run", r);
	if (!o->u.done)
		die("upload did not end in time", -ETIMEDOUT);
	if (o->u.error < 0)
		die("upload failed", o->u.error);

	smp_client_get_stats(g.c, &o->st);
	o->st.requests -= st0.requests;
	o->st.responses -= st0.responses;
	o->st.timeouts -= st0.timeouts;
	o->st.retransmits -= st0.retransmits;
	o->st.stale -= st0.stale;
	o->st.bytes_sent -= st0.bytes_sent;
	o->st.bytes_received -= st0.bytes_received;
	o->buf_size = smp_client_get_buf_size(g.c);
	o->buf_count = smp_client_get_buf_count(g.c);
	o->window = smp_client_get_window(g.c);
	o->bulk = smp_client_get_bulk_window(g.c);
	plan_upload(smp_client_packet_budget(g.c), size, sha, uc->serial, &o->pl);
	o->t_total = (double)(o->u.t_done - o->u.t_start) / 1e6;
	o->t_data = (double)(o->u.t_done - o->u.t_first) / 1e6;

	sd_event_source_disable_unref(post);
	gw_devices_release(m.devices, d);
	smp_client_unref(g.c);
	mgr_stop();
	if (uc->relay)
		relay_stop(&rl, &o->link);
	r = sim_proc_stop(&sp, SIGTERM, 10000);
	if (r != 0)
		printf("  smp-sim exit status %d\n", r);
	free(addr);
}

/* "met", or by how much the ratio falls short of the target. */
static const char *verdict(double ratio, double target, char *buf, size_t size)
{
	if (ratio >= target)
		return "met";
	snprintf(buf, size, "MISSED by %.3f", target - ratio);
	return buf;
}

static void print_upload_common(const struct up_out *o, size_t size)
{
	double mean = o->u.in_flight_us / (double)(o->u.t_done - o->u.t_start);

	printf(
	    "      buf_size %zu, buf_count %u: window %u, bulk window %u; budget %zu B/request;\n"
	    "      chunks %u (planned %u), first %zu data B, full %zu data B in a %zu B packet;\n"
	    "      in flight (any request): max %u, time-weighted mean %.2f; retransmits %llu,"
	    " resends %u, verified %s\n",
	    o->buf_size, o->buf_count, o->window, o->bulk, o->pl.budget, o->u.res.chunks,
	    o->pl.chunks, o->pl.first_data, o->pl.full_data, o->pl.full_pkt, o->u.max_in_flight,
	    mean, (unsigned long long)o->st.retransmits, o->u.res.resends,
	    o->u.res.verified ? "yes" : "no");
	printf(
	    "      client: %llu requests, %llu B sent (%llu B upload requests + %llu B other),"
	    " %llu answers, %llu B received;\n"
	    "      whole upload %.3f s = %.2f KB/s, of which %.1f ms until the first chunk's answer"
	    " (params read, first chunk alone, slot erase)\n",
	    (unsigned long long)o->st.requests, (unsigned long long)o->st.bytes_sent,
	    (unsigned long long)o->pl.pkt_bytes,
	    (unsigned long long)(o->st.bytes_sent - o->pl.pkt_bytes),
	    (unsigned long long)o->st.responses, (unsigned long long)o->st.bytes_received,
	    o->t_total, (double)size / o->t_total / 1000.0, (o->t_total - o->t_data) * 1e3);
}

/* line: the bench's byte-exact line emulator between the gateway and an
 * unthrottled smp-sim; otherwise smp-sim's own --baud. */
static void bench_serial(const uint8_t *img, size_t size, const uint8_t sha[32], unsigned baud,
			 const char *buf_count, bool line)
{
	char b[16];
	const char *sim_baud[] = {
		"--serial", "--baud", b, "--buf-size", "2048", "--buf-count", buf_count, "-q", NULL,
	};
	const char *sim_plain[] = {
		"--serial", "--buf-size", "2048", "--buf-count", buf_count, "-q", NULL,
	};
	const struct up_case uc = {.serial = true,
				   .sim_args = line ? sim_plain : sim_baud,
				   .relay = line,
				   .line_baud = baud};
	struct up_out o;
	double rate = baud / 10.0, t_req, t_req_data, limit, rsp_wire, t_rsp;
	char v1[32], v2[32];
	size_t rsp_avg;

	snprintf(b, sizeof(b), "%u", baud);
	run_upload(&uc, img, size, sha, &o);
	t_req = (double)o.pl.wire_bytes / rate;
	t_req_data = (double)o.pl.wire_after_first / rate;
	limit = (double)size / t_req;
	/* Answers: the line counts their bytes; smp-sim's --baud does not tell,
	 * so each is then taken as the framed size of the mean answer packet. */
	rsp_avg = (size_t)((o.st.bytes_received + o.st.responses - 1) / MAX(o.st.responses, 1ULL));
	rsp_wire = line ? (double)o.link.units[1]
			: (double)o.st.responses * (double)smp_serial_encoded_size(rsp_avg, 0);
	t_rsp = rsp_wire / rate;

	if (line)
		printf("  serial, %u baud 8N1 line emulated by the bench"
		       " (bytes delivered after their 10 bits, never early);\n"
		       "  smp-sim --serial --buf-size 2048 --buf-count %s\n",
		       baud, buf_count);
	else
		printf("  serial: smp-sim --serial --baud %u --buf-size 2048 --buf-count %s\n",
		       baud, buf_count);
	print_upload_common(&o, size);
	printf(
	    "      request wire bytes %llu (console framing, 127-byte lines, 10 bits per byte)"
	    " = %.3f s at %.0f B/s\n"
	    "      link payload limit = %zu B / %.3f s = %.3f KB/s\n"
	    "      measured %.3f KB/s / limit = %.3f (whole upload: params read, first chunk with"
	    " the slot erase, last chunk's check)\n"
	    "      after the first chunk's answer: %.3f s on the wire / %.3f s = %.3f\n"
	    "      answers counted on the same wire (half duplex; a UART is full duplex so they do"
	    " not count): %s%.0f B, %.3f\n",
	    (unsigned long long)o.pl.wire_bytes, t_req, rate, size, t_req, limit / 1000.0,
	    (double)size / o.t_total / 1000.0, t_req / o.t_total, t_req_data, o.t_data,
	    t_req_data / o.t_data, line ? "" : "~", rsp_wire, (t_req + t_rsp) / o.t_total);
	if (line)
		printf("      line: %llu B to the device (deepest queue %llu B),"
		       " %llu B to the gateway\n",
		       o.link.units[0], o.link.deepest[0], o.link.units[1]);
	printf(
	    "      target >= 0.95 of the serial limit: whole upload %s; after the first chunk %s\n",
	    verdict(t_req / o.t_total, 0.95, v1, sizeof(v1)),
	    verdict(t_req_data / o.t_data, 0.95, v2, sizeof(v2)));
	fflush(stdout);
}

static void bench_udp(const uint8_t *img, size_t size, const uint8_t sha[32], uint64_t bandwidth,
		      unsigned rtt_ms)
{
	static const char *const counts[] = {"2", "4", "8"};
	char rtt[16], bw[32];
	unsigned needed90 = 0, needed100 = 0;
	double cycle1 = 0;

	snprintf(rtt, sizeof(rtt), "%u", rtt_ms);
	snprintf(bw, sizeof(bw), "%llu", (unsigned long long)bandwidth);

	printf(
	    "  UDP, %llu B/s of UDP payload each way and %u ms one way (relay process, FIFO queue);"
	    " smp-sim --udp, no delay of its own\n",
	    (unsigned long long)bandwidth, rtt_ms / 2);
	for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
		const char *args[] = {
			"--udp", "127.0.0.1:0", "--buf-size", "2048", "--buf-count", counts[i], "-q",
			NULL,
		};
		const struct up_case uc = {.sim_args = args,
					   .relay = true,
					   .bandwidth = bandwidth,
					   .delay_ms = rtt_ms / 2};
		struct up_out o;
		double t_link, limit, ratio, ratio_data, t_ser, bdp;
		char v1[32], v2[32];

		run_upload(&uc, img, size, sha, &o);
		t_link = (double)o.pl.pkt_bytes / (double)bandwidth;
		limit = (double)size / t_link;
		ratio = t_link / o.t_total;
		ratio_data = (double)o.pl.wire_after_first / (double)bandwidth / o.t_data;
		printf("    buf_count %s:\n", counts[i]);
		print_upload_common(&o, size);
		printf(
		    "      link payload limit = %llu B/s x (%zu data B / %zu datagram B per full chunk);"
		    " over the whole image %zu B / (%llu datagram B / %llu B/s) = %.2f KB/s\n"
		    "      measured %.2f KB/s / limit = %.3f (after the first chunk: %.3f);"
		    " target >= 0.9: whole upload %s; after the first chunk %s\n"
		    "      relay: %llu datagrams to the device (%llu dropped, deepest queue %llu),"
		    " %llu to the gateway (%llu dropped)\n",
		    (unsigned long long)bandwidth, o.pl.full_data, o.pl.full_pkt, size,
		    (unsigned long long)o.pl.pkt_bytes, (unsigned long long)bandwidth,
		    limit / 1000.0, (double)size / o.t_total / 1000.0, ratio, ratio_data,
		    verdict(ratio, 0.9, v1, sizeof(v1)), verdict(ratio_data, 0.9, v2, sizeof(v2)),
		    o.link.units[0], o.link.drops[0], o.link.deepest[0], o.link.units[1],
		    o.link.drops[1]);
		t_ser = (double)o.pl.full_pkt / (double)bandwidth;
		if (o.bulk == 1 && cycle1 == 0)
			cycle1 = o.t_data / (o.u.res.chunks - 1);
		if (i == ELEMENTSOF(counts) - 1) {
			/* A chunk's cycle: its serialisation, the RTT, the device's
			 * work and the answer's serialisation; the window must cover
			 * it for the link never to idle. */
			bdp = (double)bandwidth * rtt_ms / 1000.0;
			printf("    window needed: bandwidth-delay product %.0f B = %.2f full datagrams,"
			       " +1 on the wire = %u bulk chunks in flight (BDP formula, rounded up)\n",
			       bdp, bdp / (double)o.pl.full_pkt,
			       (unsigned)(1 + bdp / (double)o.pl.full_pkt + 0.999));
			if (cycle1 > 0) {
				needed100 = (unsigned)(cycle1 / t_ser + 0.999);
				needed90 = (unsigned)(0.9 * cycle1 / t_ser + 0.999);
				printf(
				    "    measured chunk cycle with 1 in flight %.1f ms vs %.1f ms on the"
				    " wire: %u bulk chunks for 0.9, %u for 1.0 (client window = bulk + 1:"
				    " buf_count %u and %u; the client caps its window at %u)\n",
				    cycle1 * 1e3, t_ser * 1e3, needed90, needed100,
				    2 * (needed90 + 1), 2 * (needed100 + 1),
				    SMP_CLIENT_DEFAULT_MAX_WINDOW);
			}
		}
		fflush(stdout);
	}

	/* What smp-sim's own options do on this path: --bandwidth paces answers only. */
	{
		const char *args[] = {
			"--udp", "127.0.0.1:0", "--buf-size", "2048", "--buf-count", "8",
			"--latency", rtt, "--bandwidth", bw, "-q", NULL,
		};
		const struct up_case uc = {.sim_args = args};
		struct up_out o;

		run_upload(&uc, img, size, sha, &o);
		printf("  for comparison, smp-sim --latency %s --bandwidth %s --buf-count 8 without"
		       " the relay: %.2f KB/s = %.2f x the limit above (smp-sim paces only its"
		       " answers)\n",
		       rtt, bw, (double)size / o.t_total / 1000.0,
		       (double)o.pl.pkt_bytes / (double)bandwidth / o.t_total);
	}
	fflush(stdout);
}

static void bench_latency(const uint8_t *img, size_t size, const uint8_t sha[32], unsigned rtt_ms)
{
	static const char *const counts[] = {"2", "4", "8"};
	char rtt[16];

	snprintf(rtt, sizeof(rtt), "%u", rtt_ms);
	printf("  UDP, latency only: smp-sim --latency %u (added to each answer: RTT %u ms),"
	       " no bandwidth limit\n",
	       rtt_ms, rtt_ms);
	for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
		const char *args[] = {
			"--udp", "127.0.0.1:0", "--buf-size", "2048", "--buf-count", counts[i],
			"--latency", rtt, "-q", NULL,
		};
		const struct up_case uc = {.sim_args = args};
		struct up_out o;

		run_upload(&uc, img, size, sha, &o);
		printf("    buf_count %s: %.2f KB/s (after the first chunk %.2f KB/s),"
		       " %.1f ms per chunk\n",
		       counts[i], (double)size / o.t_total / 1000.0,
		       (double)(size - o.u.first_off) / o.t_data / 1000.0,
		       o.t_data * 1e3 / (o.u.res.chunks - 1));
		print_upload_common(&o, size);
		fflush(stdout);
	}
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path) < 0 ? -errno : 0;
}

/* Removes our mkdtemp() directory and what the runs left in it, also after die(). */
static void rm_dir(void)
{
	if (keep_dir)
		printf("files kept in %s\n", dir);
	else
		(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool wants(const char *only, const char *part)
{
	size_t n = strlen(part);

	if (!only)
		return true;
	for (const char *p = only; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, part, n) && (p[n] == 0 || p[n] == ','))
			return true;
	return false;
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
	    {"devices", required_argument, NULL, 'n'},
	    {"interval", required_argument, NULL, 'i'},
	    {"jitter", required_argument, NULL, 'j'},
	    {"rounds", required_argument, NULL, 'r'},
	    {"baud", required_argument, NULL, 'b'},
	    {"bandwidth", required_argument, NULL, 'w'},
	    {"rtt", required_argument, NULL, 't'},
	    {"only", required_argument, NULL, 'o'},
	    {"keep", no_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {},
	};
	unsigned n_dev = 1000, interval = 10, jitter = 20, rounds = 3, baud = 115200, rtt = 20;
	uint64_t bandwidth = 125000;
	const char *only = NULL;
	struct sha256_ctx ctx;
	uint8_t sha[32], *img;
	size_t size;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
		switch (opt) {
		case 'n':
			n_dev = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			interval = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'j':
			jitter = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			baud = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			bandwidth = strtoull(optarg, NULL, 10);
			break;
		case 't':
			rtt = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			only = optarg;
			break;
		case 'k':
			keep_dir = true;
			break;
		default:
			printf(
			    "usage: %s [OPTION]...\n"
			    "  --devices N     idle UDP devices behind smpgwd (default 1000)\n"
			    "  --interval S    [poll] interval in seconds (default 10)\n"
			    "  --jitter PCT    [poll] jitter (default 20)\n"
			    "  --rounds N      poll intervals measured after the first round "
			    "(default 3)\n"
			    "  --baud N        serial upload line speed (default 115200)\n"
			    "  --bandwidth B   UDP upload link, bytes of payload per second "
			    "(default 125000)\n"
			    "  --rtt MS        UDP round-trip time (default 20)\n"
			    "  --only LIST     comma-separated parts: fleet, serial, udp, latency\n"
			    "  --keep          keep the temporary directory (logs, databases)\n"
			    "Environment: top_builddir (smpgwd, tests/sim/smp-sim), top_srcdir "
			    "(" IMAGE ").\n",
			    argv[0]);
			return opt == 'h' ? EXIT_SUCCESS : EXIT_FAILURE;
		}
	n_dev = MAX(n_dev, 1u);
	interval = MAX(interval, 1u);
	rounds = MAX(rounds, 1u);
	bandwidth = MAX(bandwidth, (uint64_t)1000);
	rtt = MAX(rtt, 2u);
	signal(SIGPIPE, SIG_IGN);
	gw_log_setup("warning", NULL);
	if (!mkdtemp(dir))
		die("mkdtemp", -errno);
	atexit(rm_dir);

	img = tap_read_file(tap_srcpath(IMAGE), &size);
	if (!img)
		die(IMAGE, -ENOENT);
	sha256_init(&ctx);
	sha256_update(&ctx, size, img);
	sha256_digest(&ctx, sizeof(sha), sha);

	printf("bench-daemon");
	for (int i = 1; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	if (wants(only, "fleet"))
		bench_fleet(n_dev, interval, jitter, rounds);
	if (wants(only, "serial") || wants(only, "udp") || wants(only, "latency"))
		printf("(2) upload of %s (%zu B) through gw_devices_get_client() + "
		       "smp_image_upload()\n",
		       IMAGE, size);
	if (wants(only, "serial")) {
		printf("(2a)");
		bench_serial(img, size, sha, baud, "4", false);
		printf("(2a')");
		bench_serial(img, size, sha, baud, "4", true);
		printf("(2a'')");
		bench_serial(img, size, sha, baud, "8", true);
	}
	if (wants(only, "udp")) {
		printf("(2b)");
		bench_udp(img, size, sha, bandwidth, rtt);
	}
	if (wants(only, "latency")) {
		printf("(2c)");
		bench_latency(img, size, sha, rtt);
	}
	free(img);
	return EXIT_SUCCESS;
}
