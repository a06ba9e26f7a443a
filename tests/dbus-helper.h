/* dbus-helper: a private dbus-daemon for tests that need a message bus */
#pragma once

#include <sys/types.h>

struct test_dbus {
	pid_t pid;
	char *address; /* "unix:path=/tmp/dbus-...,guid=..." */
};

/* Starts dbus-daemon --config-file=$top_srcdir/tests/dbus/session.conf --nofork and
 * waits (at most 10 s) for the address it prints. The daemon gets SIGTERM when the
 * test process dies. Returns 0; -ENOENT when dbus-daemon is not installed (the test
 * then exits 77, skipped); another negative errno when it failed to start. */
int test_dbus_start(struct test_dbus *ret);
/* Terminates the daemon and frees the address. Safe on a zeroed or stopped struct. */
void test_dbus_stop(struct test_dbus *d);
