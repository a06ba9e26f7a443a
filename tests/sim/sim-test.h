/* sim-test: starting smp-sim from a test, reading its event lines, and synchronous SMP calls */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "smp-client.h"
#include "smp-request.h"
#include "smp-response.h"

#define SIM_TEST_MAX_LINES 1024

/* A running smp-sim with its stdout (event lines) and stdin (--control). */
struct sim_proc {
	pid_t pid;
	int out_fd;
	int in_fd;
	char buf[16384];
	size_t len;
	char *ready[SIM_TEST_MAX_LINES]; /* the READY lines, in order */
	size_t n_ready;
};

/* Starts $top_builddir/tests/sim/smp-sim with --control and the given
 * arguments (NULL-terminated), and waits at most timeout_ms for "READY all".
 * The child gets SIGKILL when the test dies. Returns 0 or a negative errno
 * (-ETIMEDOUT, -ECHILD when it exited). */
int sim_proc_start(struct sim_proc *p, unsigned timeout_ms, const char *const *args);
/* Waits at most timeout_ms for the next stdout line starting with prefix
 * (other lines are skipped). Returns a new string or NULL. */
char *sim_proc_wait_line(struct sim_proc *p, const char *prefix, unsigned timeout_ms);
/* Sends a control command and waits for its "OK" answer. Returns 0 or -EIO. */
int sim_proc_command(struct sim_proc *p, const char *cmd, unsigned timeout_ms);
/* Sends sig, waits at most timeout_ms for the exit. Returns the exit status
 * as waitpid gives it, or -ETIMEDOUT (then the child is killed). */
int sim_proc_stop(struct sim_proc *p, int sig, unsigned timeout_ms);
/* The value of "key=" in the i-th READY line of kind ("udp", ...), or the
 * second word (the address) when key is NULL. Returns a new string or NULL. */
char *sim_proc_ready(struct sim_proc *p, const char *kind, unsigned i, const char *key);

/* Milliseconds of CLOCK_MONOTONIC. */
long long sim_test_now_ms(void);

/* A UDP socket connected to host:port; -errno on failure. */
int sim_test_udp_socket(const char *hostport);
/* Waits at most timeout_ms for a datagram. Returns its length, 0 on timeout. */
ssize_t sim_test_udp_recv(int fd, uint8_t *buf, size_t size, unsigned timeout_ms);

/* Runs the loop until the request has its answer (or timeout_ms passes).
 * Returns the answer (a copy, free with smp_response_free) or NULL with the
 * error in *error (may be NULL). req is taken. */
struct smp_response *sim_test_call(sd_event *e, struct smp_client *c, struct smp_request *req,
				   unsigned timeout_ms, int *error);
/* Runs the loop until *done is true or timeout_ms passes. Returns *done. */
bool sim_test_run_until(sd_event *e, const bool *done, unsigned timeout_ms);

/* Builds a request with a libsmp builder: NULL when it failed. SIM_REQ0
 * for builders without arguments. */
#define SIM_REQ(fn, ...)                                                                           \
	({                                                                                         \
		struct smp_request *_req = NULL;                                                   \
		int _r = fn(__VA_ARGS__, &_req);                                                   \
		_r < 0 ? NULL : _req;                                                              \
	})
#define SIM_REQ0(fn)                                                                               \
	({                                                                                         \
		struct smp_request *_req = NULL;                                                   \
		int _r = fn(&_req);                                                                \
		_r < 0 ? NULL : _req;                                                              \
	})
