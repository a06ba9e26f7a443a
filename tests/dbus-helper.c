/* dbus-helper: a private dbus-daemon for tests that need a message bus */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/dbus-helper.h"
#include "tests/tap.h"

static const char *find_dbus_daemon(void)
{
	static const char *const candidates[] = {"/usr/bin/dbus-daemon", "/bin/dbus-daemon",
						 "/usr/local/bin/dbus-daemon"};

	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
		if (access(candidates[i], X_OK) == 0)
			return candidates[i];
	return NULL;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int test_dbus_start(struct test_dbus *ret)
{
	const char *daemon = find_dbus_daemon();
	char config[4096], fdarg[32], addr[512];
	size_t len = 0;
	int pipefd[2], r;
	pid_t pid;

	if (!daemon)
		return -ENOENT;
	snprintf(config, sizeof(config), "--config-file=%s",
		 tap_srcpath("tests/dbus/session.conf"));
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;

	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return r;
	}
	if (pid == 0) {
		/* The daemon must not outlive a test that crashes. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (dup2(pipefd[1], 3) < 0)
			_exit(127);
		snprintf(fdarg, sizeof(fdarg), "--print-address=3");
		execl(daemon, daemon, config, fdarg, "--nofork", "--nopidfile", (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);

	long long deadline = now_ms() + 10000;
	for (;;) {
		struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
		long long left = deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			r = -ETIMEDOUT;
			goto fail;
		}
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			goto fail;
		}
		if (r == 0)
			continue;
		n = read(pipefd[0], addr + len, sizeof(addr) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto fail;
		}
		len += (size_t)n;
		addr[len] = '\0';
		char *nl = strchr(addr, '\n');
		if (nl) {
			*nl = '\0';
			break;
		}
		if (len == sizeof(addr) - 1) {
			r = -EOVERFLOW;
			goto fail;
		}
	}
	close(pipefd[0]);

	ret->address = strdup(addr);
	if (!ret->address) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		return -ENOMEM;
	}
	ret->pid = pid;
	return 0;

fail:
	close(pipefd[0]);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return r;
}

void test_dbus_stop(struct test_dbus *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	free(d->address);
	d->address = NULL;
}
