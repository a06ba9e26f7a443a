/* sim-test: starting smp-sim from a test, reading its event lines, and synchronous SMP calls */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim-test.h"
#include "tests/tap.h"

long long sim_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what the child wrote, waiting at most until deadline. 0 when data
 * came, -ETIMEDOUT, -ECHILD at end of file. */
static int sim_proc_fill(struct sim_proc *p, long long deadline)
{
	long long left = deadline - sim_test_now_ms();
	struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
	ssize_t n;

	if (p->len == sizeof(p->buf) - 1)
		p->len = 0; /* a line this long is not ours to parse */
	if (left <= 0)
		return -ETIMEDOUT;
	if (poll(&pfd, 1, (int)left) <= 0)
		return -ETIMEDOUT;
	n = read(p->out_fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
	if (n <= 0)
		return -ECHILD;
	p->len += (size_t)n;
	p->buf[p->len] = 0;
	return 0;
}

/* Takes the next complete line, or NULL. */
static char *sim_proc_take_line(struct sim_proc *p)
{
	char *nl = memchr(p->buf, '\n', p->len), *line;

	if (!nl)
		return NULL;
	line = strndup(p->buf, (size_t)(nl - p->buf));
	memmove(p->buf, nl + 1, p->len - (size_t)(nl + 1 - p->buf));
	p->len -= (size_t)(nl + 1 - p->buf);
	p->buf[p->len] = 0;
	return line;
}

char *sim_proc_wait_line(struct sim_proc *p, const char *prefix, unsigned timeout_ms)
{
	long long deadline = sim_test_now_ms() + timeout_ms;

	for (;;) {
		char *line;

		while ((line = sim_proc_take_line(p))) {
			if (!strncmp(line, prefix, strlen(prefix)))
				return line;
			free(line);
		}
		if (sim_proc_fill(p, deadline) < 0)
			return NULL;
	}
}

int sim_proc_start(struct sim_proc *p, unsigned timeout_ms, const char *const *args)
{
	const char *builddir = getenv("top_builddir");
	char path[4096];
	int out[2], in[2];
	long long deadline = sim_test_now_ms() + timeout_ms;
	size_t n = 0;

	memset(p, 0, sizeof(*p));
	snprintf(path, sizeof(path), "%s/tests/sim/smp-sim", builddir ? builddir : ".");
	if (pipe2(out, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(in, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return -errno;
	}
	while (args[n])
		n++;
	p->pid = fork();
	if (p->pid < 0)
		return -errno;
	if (p->pid == 0) {
		const char **argv = calloc(n + 3, sizeof(char *));

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(out[1], STDOUT_FILENO);
		dup2(in[0], STDIN_FILENO);
		argv[0] = path;
		argv[1] = "--control";
		for (size_t i = 0; i < n; i++)
			argv[i + 2] = args[i];
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(in[0]);
	p->out_fd = out[0];
	p->in_fd = in[1];
	for (;;) {
		char *line;

		while ((line = sim_proc_take_line(p))) {
			if (!strcmp(line, "READY all") || !strncmp(line, "READY all ", 10)) {
				free(line);
				return 0;
			}
			if (!strncmp(line, "READY ", 6) && p->n_ready < SIM_TEST_MAX_LINES)
				p->ready[p->n_ready++] = line;
			else
				free(line);
		}
		n = (size_t)sim_proc_fill(p, deadline);
		if ((int)n < 0) {
			int r = (int)n;

			sim_proc_stop(p, SIGKILL, 1000);
			return r;
		}
	}
}

int sim_proc_command(struct sim_proc *p, const char *cmd, unsigned timeout_ms)
{
	char *line;
	size_t n = strlen(cmd);

	if (write(p->in_fd, cmd, n) != (ssize_t)n || write(p->in_fd, "\n", 1) != 1)
		return -EIO;
	line = sim_proc_wait_line(p, "OK ", timeout_ms);
	if (!line)
		return -EIO;
	free(line);
	return 0;
}

int sim_proc_stop(struct sim_proc *p, int sig, unsigned timeout_ms)
{
	long long deadline = sim_test_now_ms() + timeout_ms;
	int status = 0;

	if (p->pid <= 0)
		return -ECHILD;
	kill(p->pid, sig);
	for (;;) {
		pid_t r = waitpid(p->pid, &status, WNOHANG);

		if (r == p->pid)
			break;
		if (sim_test_now_ms() > deadline) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			status = -ETIMEDOUT;
			break;
		}
		usleep(5000); /* waitpid has no timeout; poll the exit */
	}
	p->pid = 0;
	close(p->out_fd);
	close(p->in_fd);
	for (size_t i = 0; i < p->n_ready; i++)
		free(p->ready[i]);
	p->n_ready = 0;
	return status;
}

char *sim_proc_ready(struct sim_proc *p, const char *kind, unsigned i, const char *key)
{
	size_t klen = strlen(kind);

	for (size_t k = 0; k < p->n_ready; k++) {
		const char *l = p->ready[k] + 6;

		if (strncmp(l, kind, klen) || l[klen] != ' ')
			continue;
		if (i-- > 0)
			continue;
		if (!key) {
			const char *start = l + klen + 1, *end = strchr(start, ' ');

			return strndup(start, end ? (size_t)(end - start) : strlen(start));
		}
		for (const char *w = strchr(l, ' '); w; w = strchr(w + 1, ' ')) {
			size_t n = strlen(key);

			if (!strncmp(w + 1, key, n) && w[1 + n] == '=') {
				const char *start = w + 2 + n, *end = strchr(start, ' ');

				return strndup(start, end ? (size_t)(end - start) : strlen(start));
			}
		}
		return NULL;
	}
	return NULL;
}

int sim_test_udp_socket(const char *hostport)
{
	char host[128];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST};
	struct addrinfo *ai;
	int fd;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		return -EINVAL;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int r = -errno;

		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return r;
	}
	freeaddrinfo(ai);
	return fd;
}

ssize_t sim_test_udp_recv(int fd, uint8_t *buf, size_t size, unsigned timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	if (poll(&pfd, 1, (int)timeout_ms) <= 0)
		return 0;
	return recv(fd, buf, size, 0);
}

struct sim_test_call {
	bool done;
	int error;
	struct smp_response *rsp;
};

static void sim_test_on_done(struct smp_client *c, int error, const struct smp_response *rsp,
			     void *userdata)
{
	struct sim_test_call *call = userdata;

	call->done = true;
	call->error = error;
	if (rsp) {
		call->rsp = malloc(sizeof(*call->rsp));
		if (call->rsp) {
			*call->rsp = *rsp;
			call->rsp->root = rsp->root ? cbor_copy(rsp->root) : NULL;
		}
	}
}

bool sim_test_run_until(sd_event *e, const bool *done, unsigned timeout_ms)
{
	long long deadline = sim_test_now_ms() + timeout_ms;

	while (!*done) {
		long long left = deadline - sim_test_now_ms();

		if (left <= 0)
			break;
		if (sd_event_run(e, (uint64_t)left * 1000) < 0)
			break;
	}
	return *done;
}

struct smp_response *sim_test_call(sd_event *e, struct smp_client *c, struct smp_request *req,
				   unsigned timeout_ms, int *error)
{
	struct sim_test_call call = {0};
	uint64_t id;
	int r;

	if (!req) {
		if (error)
			*error = -EINVAL;
		return NULL;
	}
	r = smp_client_send(c, req, SMP_PRIO_INTERACTIVE, timeout_ms, sim_test_on_done, &call, NULL,
			    &id);
	if (r < 0) {
		if (error)
			*error = r;
		return NULL;
	}
	if (!sim_test_run_until(e, &call.done, timeout_ms + 2000)) {
		smp_client_cancel(c, id);
		call.error = -ETIMEDOUT;
	}
	if (error)
		*error = call.error;
	return call.rsp;
}
