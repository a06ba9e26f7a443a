/* test-gw-log: priority prefixes, level filtering, per-module debug, errno returns */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/gw-log.h"
#include "tests/tap.h"

static char captured[8192];

/* Runs fn with stderr redirected into captured. */
static void capture(void (*fn)(void))
{
	int p[2], saved = dup(STDERR_FILENO);
	ssize_t n;

	if (pipe(p) < 0)
		abort();
	fflush(stderr);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = read(p[0], captured, sizeof(captured) - 1);
	captured[n > 0 ? n : 0] = 0;
	close(p[0]);
}

static int ret_value;

static void emit(void)
{
	gw_err("core", "broken %d", 1);
	gw_info("core", "hello");
	gw_debug("client", "chatty");
	gw_debug("bluez", "also chatty");
	ret_value = gw_log_errno(LOG_WARNING, -ENOENT, "db", "open failed: %m");
	gw_notice("core", "two\nlines");
}

int main(void)
{
	is_int(gw_log_setup("info", "client"), 0, "setup");
	capture(emit);
	ok(strstr(captured, "<3>core: broken 1\n") != NULL, "error with prefix 3");
	ok(strstr(captured, "<6>core: hello\n") != NULL, "info with prefix 6");
	ok(strstr(captured, "<7>client: chatty\n") != NULL, "debug of a listed module shown");
	ok(strstr(captured, "also chatty") == NULL, "debug of another module hidden");
	ok(strstr(captured, "<4>db: open failed: No such file or directory\n") != NULL, "%%m prints the error");
	is_int(ret_value, -ENOENT, "returns the negative errno");
	ok(strstr(captured, "<5>core: two lines\n") != NULL, "one line per message");

	is_int(gw_log_setup("err", ""), 0, "quiet setup");
	capture(emit);
	ok(strstr(captured, "hello") == NULL && strstr(captured, "broken") != NULL, "info hidden at err");
	is_int(gw_log_setup("debug", "all"), 0, "debug all");
	ok(gw_log_enabled(LOG_DEBUG, "anything"), "all modules at debug");
	is_int(gw_log_setup("loud", NULL), -EINVAL, "unknown level refused");
	is_int(gw_log_level_from_string("WARNING"), LOG_WARNING, "level names are case-insensitive");
	return tap_done();
}
