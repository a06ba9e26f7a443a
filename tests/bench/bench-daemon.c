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
#include "daemon/gw-poller.h"
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

/* The link is smp-sim's own (tests/sim/sim-pace.h): --baud paces each byte of
 * a UART, 10 bits with framing, both ways; --bandwidth paces each datagram
 * both ways; --latency is added to every answer (the round trip). */

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
	if ((r = gw_registry_new(&m, &m.registry)) < 0 ||
	    (r = gw_devices_new(&m, &m.devices)) < 0 || (r = gw_poller_new(&m, &m.poller)) < 0)
		die("manager modules", r);
}

static void mgr_stop(void)
{
	m.poller = gw_poller_free(m.poller);
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
	/* requests in flight, sampled after every dispatch: max and time integral */
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

/* ---- what the link must carry, and the best any client could do ---- */

#define MAX_CHUNKS 65536

/* The exact upload requests for the chunk size the client picks
 * (smp-upload's rule: fill the budget, which is also the best choice). */
struct plan {
	size_t budget;
	unsigned chunks;
	size_t first_data;	    /* data bytes of the first chunk */
	size_t full_data, full_pkt; /* a full later chunk: data bytes, packet bytes */
	uint64_t pkt_bytes;	    /* SMP packets, headers included */
	uint64_t wire_bytes;	    /* serial: console-framed bytes; UDP: = pkt_bytes */
	uint32_t *wire;		    /* per chunk: bytes on the wire */
	uint32_t *data;		    /* per chunk: image bytes */
};

static void plan_upload(size_t budget, uint64_t size, const uint8_t sha[32], bool serial,
			struct plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	pl->budget = budget;
	pl->wire = calloc(MAX_CHUNKS, sizeof(*pl->wire));
	pl->data = calloc(MAX_CHUNKS, sizeof(*pl->data));
	if (!pl->wire || !pl->data)
		die("plan", -ENOMEM);
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

		if (n == 0 || pl->chunks == MAX_CHUNKS)
			die("no data fits the budget", -EMSGSIZE);
		if (off == 0)
			pl->first_data = n;
		else if (pl->full_data == 0) {
			pl->full_data = n;
			pl->full_pkt = pkt;
		}
		pl->wire[pl->chunks] = (uint32_t)wire;
		pl->data[pl->chunks] = (uint32_t)n;
		pl->pkt_bytes += pkt;
		pl->wire_bytes += wire;
		pl->chunks++;
		off += n;
	}
}

static void plan_free(struct plan *pl)
{
	free(pl->wire);
	free(pl->data);
	pl->wire = pl->data = NULL;
}

/* The link and the device as the run sets them up. */
struct model {
	bool serial;
	double rate;		   /* bytes per second of the wire, each way; 0: no limit */
	double rtt;		   /* s, smp-sim --latency */
	uint64_t write_us_per_kib; /* smp-sim --flash-write-us-per-kib (its default) */
	unsigned w_max;		   /* requests the device can hold: buf_count - 1 */
	double rsp_wire;	   /* bytes of one answer on the wire (framed on serial) */
};

#define SIM_WRITE_US_PER_KIB 2000

/* The device's time for a chunk, as smp-sim computes it (integer µs); an
 * empty slot needs no erase. */
static double dev_s(const struct model *md, uint32_t data)
{
	return (double)((uint64_t)data * md->write_us_per_kib / 1024) / 1e6;
}

static double wire_s(const struct model *md, double bytes)
{
	return md->rate > 0 ? bytes / md->rate : 0;
}

struct best {
	double t;		     /* s: the largest of the three below */
	double t_wire, t_dev, t_win; /* the bounds */
	const char *bound;	     /* which one binds */
};

/* The fluid bound: a relaxation of the limit (sched_time() below) that a
 * closed formula gives. No client can move chunks [from, n) faster given
 * the link, the device's service times and at most w_max requests at the
 * device (buf_count - 1: Zephyr takes a buffer per waiting request and one
 * for the answer being built). Each is a lower bound on the completion time
 * from the first request's first byte to the last answer's last byte:
 *   wire:   every request passes the wire one after the other; then the last
 *           one is served and its answer comes back;
 *   device: the device serves one request at a time (on serial its worker
 *           also writes the answer, so it is held for the answer's wire
 *           time); the first request must arrive first and the last answer
 *           come back;
 *   window: request i holds one of the w_max places for at least its cycle
 *           (its wire time, service, answer wire time, RTT), so the total
 *           is at least sum(cycle) / w_max, and at least the longest cycle.
 * The bound assumes requests spread out perfectly over the window; the
 * device serves one at a time, so the first w_max wait for each other and
 * the bound is not reachable when the window binds (see sched_time()). */
static void best_time(const struct model *md, const struct plan *pl, unsigned from, struct best *b)
{
	double rsp = wire_s(md, md->rsp_wire), hold = md->serial ? rsp : 0;
	double sum_wire = 0, sum_dev = 0, sum_cycle = 0, max_cycle = 0;

	memset(b, 0, sizeof(*b));
	if (from >= pl->chunks)
		return;
	for (unsigned i = from; i < pl->chunks; i++) {
		double w = wire_s(md, pl->wire[i]), d = dev_s(md, pl->data[i]);
		/* The worker's hold and the answer's wire time are the same time. */
		double cycle = w + d + rsp + md->rtt;

		sum_wire += w;
		sum_dev += d + hold;
		sum_cycle += cycle;
		max_cycle = MAX(max_cycle, cycle);
	}
	b->t_wire = sum_wire + dev_s(md, pl->data[pl->chunks - 1]) + rsp + md->rtt;
	b->t_dev = wire_s(md, pl->wire[from]) + sum_dev + rsp - hold + md->rtt;
	b->t_win = MAX(sum_cycle / md->w_max, max_cycle);
	b->t = b->t_wire;
	b->bound = "link";
	if (b->t_dev > b->t) {
		b->t = b->t_dev;
		b->bound = "device";
	}
	if (b->t_win > b->t) {
		b->t = b->t_win;
		b->bound = "window";
	}
}

/* When a client that keeps at most w_max requests in flight, and sends each
 * one as soon as an answer frees a place, gets its last answer: the same
 * model chunk by chunk, the device serving in order (on serial its worker
 * writes each answer before it takes the next request). Every time is the
 * earliest its constraints allow and they only ever wait for earlier
 * events, so no client that learns of a free place from an answer finishes
 * earlier: this is the link's limit the ratio is taken against. Proof in
 * short: request k may reach the device only when one of the w_max places is
 * free, and the client learns that from the answer of request k - w_max (the
 * device answers in order and frees a request's buffer when it sends its
 * answer), so arrive_k >= answer_{k-w_max} + the request's wire time; also
 * arrive_k >= arrive_{k-1} + wire (one wire) and done_k >= max(arrive_k,
 * done_{k-1} + hold) + service. Each bound is monotone in earlier times, so
 * taking every one with equality gives every event its earliest possible
 * time at once. A client that sent before the answer would bet on the
 * device's timing, and a lost bet is a dropped request and a retransmission
 * timeout. Unlike the fluid bound it counts the device's queue: the first
 * w_max requests arrive together and wait for each other. */
static double sched_time(const struct model *md, const struct plan *pl)
{
	double rsp = wire_s(md, md->rsp_wire), hold = md->serial ? rsp : 0;
	double req_wire = 0, dev_free = 0, rsp_wire = 0, t;
	double *ans = calloc(pl->chunks, sizeof(*ans));

	if (!ans)
		die("schedule", -ENOMEM);
	for (unsigned i = 0; i < pl->chunks; i++) {
		double send = i < md->w_max ? 0 : ans[i - md->w_max];
		double arrive = MAX(send, req_wire) + wire_s(md, pl->wire[i]);
		double done = MAX(arrive, dev_free) + dev_s(md, pl->data[i]);

		req_wire = arrive;
		dev_free = done + hold;
		rsp_wire = MAX(done, rsp_wire) + rsp;
		ans[i] = rsp_wire + md->rtt;
	}
	t = ans[pl->chunks - 1];
	free(ans);
	return t;
}

/* ---- one upload ---- */

struct image {
	uint8_t *data;
	size_t size;
	uint8_t sha[32];
};

struct up_case {
	bool serial;
	const char *const *sim_args;
	struct model md; /* rate, rtt, serial; the rest is filled in */
};

struct up_out {
	struct plan pl;
	struct upload u;
	struct smp_client_stats st;
	unsigned buf_count, window, bulk;
	size_t buf_size;
	unsigned long long dev_no_buffer, wire_drops; /* from smp-sim's dump */
	double t_total, t_data;			      /* s */
	bool seeded; /* the client had params before the upload asked */
	struct model md;
	struct best all; /* every chunk */
	double sched;    /* sched_time() */
};

/* The device's counts from smp-sim's "dump" line (see sim-node.c). */
static void sim_drops(struct sim_proc *p, const char *err_path, struct up_out *o)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f;

	if (sim_proc_command(p, "dump", 10000) < 0)
		die("smp-sim dump", -EIO);
	f = fopen(err_path, "re");
	if (!f)
		die(err_path, -errno);
	while (getline(&line, &cap, f) > 0) {
		const char *q = strstr(line, " without a buffer)"),
			   *w = strstr(line, " dropped on the wire");
		const char *b;

		if (!q || !w)
			continue;
		for (b = q; b > line && b[-1] >= '0' && b[-1] <= '9'; b--)
			;
		o->dev_no_buffer = strtoull(b, NULL, 10);
		for (b = w; b > line && b[-1] >= '0' && b[-1] <= '9'; b--)
			;
		o->wire_drops = strtoull(b, NULL, 10);
	}
	free(line);
	fclose(f);
}

static void run_upload(const struct up_case *uc, const uint8_t *img, size_t size,
		       const uint8_t sha[32], struct up_out *o)
{
	struct sim_proc sp;
	char *addr, identity[512], err_path[512];
	struct gw_device_spec spec = {.source = GW_SOURCE_API};
	struct gw_device *d = NULL;
	struct get g = {0};
	struct smp_upload_source src = {.fd = -1, .data = img, .size = size, .has_sha = true};
	struct smp_upload_options opts;
	struct smp_client_stats st0;
	sd_event_source *post = NULL;
	double deadline, rsp_avg;
	int r;

	memset(o, 0, sizeof(*o));
	snprintf(err_path, sizeof(err_path), "%s/sim-upload.err", dir);
	sim_start(&sp, uc->sim_args, err_path);
	addr = sim_proc_ready(&sp, uc->serial ? "serial" : "udp", 0, NULL);
	if (!addr)
		die("smp-sim: no address", -EBADMSG);

	mgr_start();
	spec.transport = uc->serial ? GW_TRANSPORT_SERIAL : GW_TRANSPORT_UDP;
	snprintf(identity, sizeof(identity), "%s:%s", uc->serial ? "tty" : "udp", addr);
	spec.identity = identity;
	spec.address = addr;
	r = gw_registry_upsert(m.registry, &spec, &d);
	if (r < 0)
		die("registry", r);
	gw_registry_set_online(m.registry, d, true);
	/* As in smpgwd, the device's first poll round (a full one, at once
	 * when it comes online) reads its params before any upload: the
	 * client then starts with them (gw-devices.c). */
	deadline = now_s() + 10;
	for (;;) {
		struct gw_poller_device_stats ps;

		if (gw_poller_get_device_stats(m.poller, d, &ps) < 0)
			die("poller", -ENOENT);
		if (ps.answered > 0 && !ps.in_flight)
			break;
		if (now_s() > deadline)
			die("the device's first poll round did not end within 10 s", -ETIMEDOUT);
		if ((r = sd_event_run(m.event, 100000)) < 0)
			die("sd_event_run", r);
	}

	r = gw_devices_get_client(m.devices, d, on_get, &g, NULL, NULL);
	if (r < 0)
		die("gw_devices_get_client", r);
	if (!sim_test_run_until(m.event, &g.done, 10000) || g.error < 0)
		die("no client", g.done ? g.error : -ETIMEDOUT);
	o->seeded = smp_client_params_known(g.c);
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

	o->md = uc->md;
	o->md.write_us_per_kib = SIM_WRITE_US_PER_KIB;
	o->md.w_max = MAX(o->buf_count, 2u) - 1;
	rsp_avg = (double)o->st.bytes_received / (double)MAX(o->st.responses, 1ULL);
	o->md.rsp_wire =
	    uc->serial ? (double)smp_serial_encoded_size((size_t)(rsp_avg + 0.5), 0) : rsp_avg;
	best_time(&o->md, &o->pl, 0, &o->all);
	o->sched = sched_time(&o->md, &o->pl);
	/* The limit is an exact schedule, the fluid bound a relaxation of it. */
	if (o->sched < o->all.t * (1 - 1e-9))
		die("the schedule beats the fluid bound: the model is wrong", -EINVAL);

	sd_event_source_disable_unref(post);
	gw_devices_release(m.devices, d);
	smp_client_unref(g.c);
	mgr_stop();
	sim_drops(&sp, err_path, o);
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

/* A table row for the README, after the details. */
struct row {
	char link[64];
	size_t size;
	unsigned buf_count, window;
	unsigned chunks;
	size_t full_data;
	double t, kbs, limit_kbs, fluid_kbs, wire_kbs, ratio, ratio_fluid, first_ms, mean_in_flight;
	const char *bound;
	double target;
};

static struct row rows[64];
static size_t n_rows;

static void print_upload(const char *label, const struct up_out *o, size_t size, double target)
{
	double mean = o->u.in_flight_us / (double)(o->u.t_done - o->u.t_start);
	double ratio = o->sched / o->t_total, first_ms = (o->t_total - o->t_data) * 1e3;
	double ratio_fluid = o->all.t / o->t_total;
	double wire_rate =
	    o->md.rate > 0 ? (double)size / wire_s(&o->md, (double)o->pl.wire_bytes) : 0;
	char v1[32];
	struct row *w;

	printf("    %s, %zu B image, buf_count %u:\n", label, size, o->buf_count);
	printf("      buf_size %zu: window %u (bulk %u), the device holds %u; budget %zu B/request;"
	       " chunks %u (planned %u), first %zu data B, full %zu data B in a %zu B packet;"
	       " params %s\n",
	       o->buf_size, o->window, o->bulk, o->md.w_max, o->pl.budget, o->u.res.chunks,
	       o->pl.chunks, o->pl.first_data, o->pl.full_data, o->pl.full_pkt,
	       o->seeded ? "from the registry (no params read)" : "read by the client first");
	printf(
	    "      in flight: max %u, time-weighted mean %.2f; client: %llu requests, %llu answers,"
	    " %llu timeouts, %llu retransmits, %u resends; smp-sim: %llu requests dropped without"
	    " a buffer, %llu on the wire; verified %s\n",
	    o->u.max_in_flight, mean, (unsigned long long)o->st.requests,
	    (unsigned long long)o->st.responses, (unsigned long long)o->st.timeouts,
	    (unsigned long long)o->st.retransmits, o->u.res.resends, o->dev_no_buffer,
	    o->wire_drops, o->u.res.verified ? "yes" : "no");
	if (wire_rate > 0)
		printf("      request wire bytes %llu%s = %.3f s at %.0f B/s: the link alone (no"
		       " window, no device) carries the image at %.2f KB/s\n",
		       (unsigned long long)o->pl.wire_bytes,
		       o->md.serial ? " (console framing, 127-byte lines)" : " (datagrams)",
		       wire_s(&o->md, (double)o->pl.wire_bytes), o->md.rate, wire_rate / 1000.0);
	else
		printf("      request bytes %llu (datagrams); no bandwidth limit\n",
		       (unsigned long long)o->pl.wire_bytes);
	printf("      limit: the best any client can do that sends a chunk only when an answer"
	       " has freed a place at the device, each as early as that allows: %.3f s = %.2f"
	       " KB/s\n",
	       o->sched, (double)size / o->sched / 1000.0);
	printf("      fluid bound (the window spread perfectly, no queue at the device): %.3f s"
	       " (link %.3f, device %.3f, window %.3f: %s-bound) = %.2f KB/s\n",
	       o->all.t, o->all.t_wire, o->all.t_dev, o->all.t_win, o->all.bound,
	       (double)size / o->all.t / 1000.0);
	printf("      measured: whole upload %.3f s = %.2f KB/s (%.1f ms until the first chunk's"
	       " answer%s); ratio to the limit %.3f, to the fluid bound %.3f\n",
	       o->t_total, (double)size / o->t_total / 1000.0, first_ms,
	       o->seeded ? "" : ", the params read before it", ratio, ratio_fluid);
	if (target > 0)
		printf("      target >= %.2f: %s\n", target,
		       verdict(ratio, target, v1, sizeof(v1)));
	fflush(stdout);

	if (n_rows == ELEMENTSOF(rows))
		return;
	w = &rows[n_rows++];
	snprintf(w->link, sizeof(w->link), "%s", label);
	w->size = size;
	w->buf_count = o->buf_count;
	w->window = o->window;
	w->chunks = o->u.res.chunks;
	w->full_data = o->pl.full_data;
	w->t = o->t_total;
	w->kbs = (double)size / o->t_total / 1000.0;
	w->limit_kbs = (double)size / o->sched / 1000.0;
	w->fluid_kbs = (double)size / o->all.t / 1000.0;
	w->wire_kbs = wire_rate / 1000.0;
	w->ratio = ratio;
	w->first_ms = first_ms;
	w->ratio_fluid = ratio_fluid;
	w->mean_in_flight = mean;
	w->bound = o->all.bound;
	w->target = target;
}

static void print_rows(void)
{
	printf("(2) summary: | link | image B | buf_count | window | chunks x data B | whole "
	       "upload s |"
	       " KB/s | limit KB/s | ratio | fluid bound KB/s (binding) | ratio to it |"
	       " link alone KB/s |"
	       " first answer ms |"
	       " mean in flight | target |\n");
	for (size_t i = 0; i < n_rows; i++) {
		const struct row *w = &rows[i];
		char t[32] = "";

		if (w->target > 0)
			snprintf(t, sizeof(t), ">= %.2f %s", w->target,
				 w->ratio >= w->target ? "met" : "MISSED");
		char wire[32] = "-";

		if (w->wire_kbs > 0)
			snprintf(wire, sizeof(wire), "%.2f", w->wire_kbs);
		printf("| %s | %zu | %u | %u | %u x %zu | %.3f | %.2f | %.2f | %.3f | %.2f (%s) |"
		       " %.3f | %s | %.1f | %.2f | %s |\n",
		       w->link, w->size, w->buf_count, w->window, w->chunks, w->full_data, w->t,
		       w->kbs, w->limit_kbs, w->ratio, w->fluid_kbs, w->bound, w->ratio_fluid,
		       wire, w->first_ms,
		       w->mean_in_flight, t);
	}
}

static void bench_serial(const uint8_t *img, size_t size, const uint8_t sha[32], unsigned baud)
{
	static const char *const counts[] = {"2", "4"};
	char b[16], label[64];

	snprintf(b, sizeof(b), "%u", baud);
	snprintf(label, sizeof(label), "serial %u baud", baud);
	printf("  serial: smp-sim --serial --baud %u --buf-size 2048 (8N1: %.0f B/s each way)\n",
	       baud, baud / 10.0);
	for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
		const char *args[] = {
		    "--serial",	   "--baud",  b,    "--buf-size", "2048",
		    "--buf-count", counts[i], "-q", NULL,
		};
		const struct up_case uc = {
		    .serial = true, .sim_args = args, .md = {.serial = true, .rate = baud / 10.0}};
		struct up_out o;

		run_upload(&uc, img, size, sha, &o);
		print_upload(label, &o, size, 0.95);
		plan_free(&o.pl);
	}
}

/* bandwidth 0: latency only. */
static void bench_udp(const struct image *imgs, size_t n_imgs, uint64_t bandwidth, unsigned rtt_ms)
{
	static const char *const counts[] = {"2", "4", "8"};
	char rtt[16], bw[32], label[64];

	snprintf(rtt, sizeof(rtt), "%u", rtt_ms);
	snprintf(bw, sizeof(bw), "%llu", (unsigned long long)bandwidth);
	if (bandwidth)
		snprintf(label, sizeof(label), "UDP %llu B/s, RTT %u ms",
			 (unsigned long long)bandwidth, rtt_ms);
	else
		snprintf(label, sizeof(label), "UDP RTT %u ms", rtt_ms);
	printf("  %s: smp-sim --udp --buf-size 2048 --latency %u%s%s\n", label, rtt_ms,
	       bandwidth ? " --bandwidth " : "", bandwidth ? bw : "");
	for (size_t k = 0; k < n_imgs; k++)
		for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
			const char *args[] = {
			    "--udp",	   "127.0.0.1:0", "--buf-size", "2048",
			    "--buf-count", counts[i],	  "--latency",	rtt,
			    "-q",	   NULL,	  NULL,		NULL,
			};
			struct up_case uc = {
			    .sim_args = args,
			    .md = {.rate = (double)bandwidth, .rtt = rtt_ms / 1000.0}};
			struct up_out o;

			if (bandwidth) {
				args[8] = "--bandwidth";
				args[9] = bw;
				args[10] = "-q";
			}
			run_upload(&uc, imgs[k].data, imgs[k].size, imgs[k].sha, &o);
			print_upload(label, &o, imgs[k].size, 0.9);
			plan_free(&o.pl);
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

/* The test image, and a larger one: its first bytes (the MCUboot header
 * smp-sim checks) and then a fixed pseudo-random filler up to kib KiB. */
static void images_load(struct image *small, struct image *large, unsigned kib)
{
	struct sha256_ctx ctx;
	uint64_t x = 0x9E3779B97F4A7C15ULL;

	small->data = tap_read_file(tap_srcpath(IMAGE), &small->size);
	if (!small->data)
		die(IMAGE, -ENOENT);
	sha256_init(&ctx);
	sha256_update(&ctx, small->size, small->data);
	sha256_digest(&ctx, sizeof(small->sha), small->sha);

	large->size = (size_t)kib * 1024;
	if (large->size <= small->size) {
		large->size = 0;
		return;
	}
	large->data = malloc(large->size);
	if (!large->data)
		die("image", -ENOMEM);
	memcpy(large->data, small->data, small->size);
	for (size_t i = small->size; i < large->size; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		large->data[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
	}
	sha256_init(&ctx);
	sha256_update(&ctx, large->size, large->data);
	sha256_digest(&ctx, sizeof(large->sha), large->sha);
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
	    {"devices", required_argument, NULL, 'n'}, {"interval", required_argument, NULL, 'i'},
	    {"jitter", required_argument, NULL, 'j'},  {"rounds", required_argument, NULL, 'r'},
	    {"baud", required_argument, NULL, 'b'},    {"bandwidth", required_argument, NULL, 'w'},
	    {"rtt", required_argument, NULL, 't'},     {"image-kib", required_argument, NULL, 'K'},
	    {"only", required_argument, NULL, 'o'},    {"keep", no_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},	       {},
	};
	unsigned n_dev = 1000, interval = 10, jitter = 20, rounds = 3, baud = 115200, rtt = 20;
	unsigned image_kib = 400;
	uint64_t bandwidth = 125000;
	const char *only = NULL;
	struct image imgs[2] = {0};
	size_t n_imgs;
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
		case 'K':
			image_kib = (unsigned)strtoul(optarg, NULL, 10);
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
			    "  --image-kib N   size of the larger UDP test image (default 400; 0: "
			    "none)\n"
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
	images_load(&imgs[0], &imgs[1], image_kib);
	n_imgs = imgs[1].size ? 2 : 1;

	printf("bench-daemon");
	for (int i = 1; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	if (wants(only, "fleet"))
		bench_fleet(n_dev, interval, jitter, rounds);
	if (wants(only, "serial") || wants(only, "udp") || wants(only, "latency")) {
		printf(
		    "(2) uploads through gw_devices_get_client() + smp_image_upload(): %s (%zu B)",
		    IMAGE, imgs[0].size);
		if (n_imgs > 1)
			printf(", and on UDP also %zu B (its header, then filler)", imgs[1].size);
		printf("\n");
	}
	if (wants(only, "serial"))
		bench_serial(imgs[0].data, imgs[0].size, imgs[0].sha, baud);
	if (wants(only, "udp"))
		bench_udp(imgs, n_imgs, bandwidth, rtt);
	if (wants(only, "latency"))
		bench_udp(imgs, n_imgs, 0, rtt);
	if (n_rows)
		print_rows();
	free(imgs[0].data);
	free(imgs[1].data);
	return EXIT_SUCCESS;
}
