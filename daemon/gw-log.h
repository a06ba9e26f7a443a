/* gw-log: smpgwd's logging: stderr lines with journald priority prefixes, per-module debug */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

#include "lib/macro.h"

/* Sets the lowest priority logged (LOG_ERR .. LOG_DEBUG) and the modules
 * whose debug lines are shown even above that level ("all", or a
 * comma-separated list such as "client,bluez"). Returns -EINVAL for an
 * unknown level name. */
int gw_log_setup(const char *level, const char *debug_modules);
int gw_log_level_from_string(const char *s);

/* Writes "<prio>module: message\n" to stderr; journald reads the prefix.
 * Returns -abs(error) when error is non-zero so callers can
 * `return gw_log_errno(LOG_ERR, r, "mod", "...: %m")`; %m prints error. */
_printf_(4, 5) int gw_log_errno(int prio, int error, const char *module, const char *fmt, ...);
bool gw_log_enabled(int prio, const char *module);

#define gw_log(prio, module, ...) gw_log_errno((prio), 0, (module), __VA_ARGS__)
#define gw_err(module, ...) gw_log_errno(LOG_ERR, 0, (module), __VA_ARGS__)
#define gw_warn(module, ...) gw_log_errno(LOG_WARNING, 0, (module), __VA_ARGS__)
#define gw_notice(module, ...) gw_log_errno(LOG_NOTICE, 0, (module), __VA_ARGS__)
#define gw_info(module, ...) gw_log_errno(LOG_INFO, 0, (module), __VA_ARGS__)
#define gw_debug(module, ...) gw_log_errno(LOG_DEBUG, 0, (module), __VA_ARGS__)
