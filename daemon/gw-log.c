/* gw-log: smpgwd's logging: stderr lines with journald priority prefixes, per-module debug */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/gw-log.h"

/* The daemon's one piece of process-wide state besides the manager: logging
 * must work before the manager exists and from every module. */
static int log_max = LOG_INFO;
static char log_debug_modules[256];

int gw_log_level_from_string(const char *s)
{
	static const char *const names[] = { "emerg", "alert", "crit", "err",
					      "warning", "notice", "info", "debug" };

	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (strcasecmp(s, names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

int gw_log_setup(const char *level, const char *debug_modules)
{
	int l = gw_log_level_from_string(level ? level : "info");

	if (l < 0)
		return l;
	log_max = l;
	snprintf(log_debug_modules, sizeof(log_debug_modules), "%s", debug_modules ? debug_modules : "");
	return 0;
}

static bool module_listed(const char *module)
{
	size_t n = strlen(module);
	const char *p = log_debug_modules;

	if (strcmp(p, "all") == 0)
		return true;
	while (*p) {
		const char *end = strchrnul(p, ',');

		if ((size_t)(end - p) == n && strncmp(p, module, n) == 0)
			return true;
		p = *end ? end + 1 : end;
	}
	return false;
}

bool gw_log_enabled(int prio, const char *module)
{
	return prio <= log_max || (prio == LOG_DEBUG && module && module_listed(module));
}

int gw_log_errno(int prio, int error, const char *module, const char *fmt, ...)
{
	char line[2048];
	int n, saved = errno;
	va_list ap;

	if (error < 0)
		error = -error;
	if (!gw_log_enabled(prio, module))
		return -error;
	errno = error;
	n = snprintf(line, sizeof(line), "<%d>%s: ", prio, module ? module : "smpgwd");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One write per line so lines from a crash handler or a child do not interleave. */
	for (char *c = line + n; *c; c++)
		if (*c == '\n')
			*c = ' ';
	fprintf(stderr, "%s\n", line);
	errno = saved;
	return -error;
}
