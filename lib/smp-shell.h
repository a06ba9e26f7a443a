/* smp-shell: requests and response parser of the shell group (9) */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "smp-request.h"
#include "smp-response.h"

/* Builder and parser conventions are those of smp-os.h. */

/* Exec (cmd 0, WRITE): {"argv": [text, ...]}. The device joins the elements
 * with single spaces, so pass one token per element. argc 0 or a NULL element
 * is -EINVAL. */
int smp_shell_exec_request(const char *const *argv, size_t argc, struct smp_request **ret);

/* → {"o": text, "ret": int}. Devices before Zephyr ~3.2 (or with
 * ..._SHELL_LEGACY_RC_RETURN_CODE) put the exit code in "rc" beside "o"; it is
 * read as the exit code. A non-zero exit code is command output, not an error. */
struct smp_shell_result {
	/* Captured output: any bytes (devices send non-UTF-8 as text, and a byte
	 * string is accepted too); output_len counts them, and a NUL follows. */
	char *output;
	size_t output_len;
	int64_t ret;
};

int smp_shell_exec_parse(const struct smp_response *rsp, struct smp_shell_result **ret);
struct smp_shell_result *smp_shell_result_free(struct smp_shell_result *r);
