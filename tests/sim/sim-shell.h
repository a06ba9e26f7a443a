/* sim-shell: a few Zephyr shell commands behind the shell group's exec */
#pragma once

#include "sim-smp.h"

/* Shell group exec (smp-protocol.md §10): joins argv with spaces, runs the
 * line through the dummy backend and answers {"o": output, "ret": status}.
 * Commands: help, echo, kernel {uptime, version, cycles, reboot},
 * mcuboot {confirm, erase <slot>}. Unknown commands print Zephyr's
 * "command not found" in red and return -ENOEXEC. */
int sim_shell_exec(struct sim_ctx *c);
