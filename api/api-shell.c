/* api-shell: the shell group (9) over HTTP: one command line, its output and exit code */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-field.h"
#include "api/api-text.h"
#include "api/api.h"
#include "lib/macro.h"
#include "lib/smp-shell.h"

/* Zephyr's shell splits a line into at most CONFIG_SHELL_ARGC_MAX words (20
 * by default) and holds CONFIG_SHELL_CMD_BUFF_SIZE bytes (256); the device
 * judges its own limits (COMMAND_TOO_LONG). These bounds only keep a
 * client from building a request no device could take. */
#define API_SHELL_ARGC_MAX 64
#define API_SHELL_ARG_MAX 256
#define API_SHELL_LINE_MAX 1024

static int api_shell_on_exec(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_shell_result *res = NULL;
	json_t *o;
	int r;

	r = smp_shell_exec_parse(rsp, &res);
	if (r < 0)
		return r;
	/* Devices send whatever bytes the command printed as a text string. */
	o = json_pack("{s:I}", "ret", (json_int_t)res->ret);
	r = o ? api_text_set_bytes(o, "output", "output_b64", false, (const uint8_t *)res->output,
				   res->output_len)
	      : -ENOMEM;
	smp_shell_result_free(res);
	if (r < 0) {
		json_decref(o);
		return r;
	}
	*ret = o;
	return 0;
}

/* The words of {"argv": [...]}: a non-empty array of non-empty strings
 * without control characters (a line feed would end the command line on
 * the device and start another). Returns the count and a malloc'd array of
 * pointers borrowed from body, or -EINVAL after replying 400. */
static int api_shell_argv(struct api_req *q, json_t *body, const char ***ret)
{
	static const char *const allowed[] = {"argv", NULL};
	json_t *argv, *v;
	const char **words;
	size_t i, n, line = 0;

	if (api_field_only(q, body, allowed) < 0)
		return -EINVAL;
	argv = json_object_get(body, "argv");
	if (!json_is_array(argv) || json_array_size(argv) == 0) {
		api_reply_error(q, 400, "bad_request",
				"\"argv\": must be a non-empty array of strings");
		return -EINVAL;
	}
	n = json_array_size(argv);
	if (n > API_SHELL_ARGC_MAX) {
		api_reply_error(q, 400, "bad_request", "\"argv\": at most %d words",
				API_SHELL_ARGC_MAX);
		return -EINVAL;
	}
	json_array_foreach(argv, i, v) {
		size_t len = json_string_length(v);

		if (!json_is_string(v) || len == 0) {
			api_reply_error(q, 400, "bad_request",
					"\"argv\": word %zu must be a non-empty string", i);
			return -EINVAL;
		}
		if (len > API_SHELL_ARG_MAX) {
			api_reply_error(q, 400, "bad_request",
					"\"argv\": word %zu is longer than %d bytes", i,
					API_SHELL_ARG_MAX);
			return -EINVAL;
		}
		if (api_text_has_control(json_string_value(v), len)) {
			api_reply_error(q, 400, "bad_request",
					"\"argv\": word %zu holds a control character", i);
			return -EINVAL;
		}
		line += len + 1;
	}
	if (line - 1 > API_SHELL_LINE_MAX) {
		api_reply_error(q, 400, "bad_request",
				"\"argv\": the command line exceeds %d bytes", API_SHELL_LINE_MAX);
		return -EINVAL;
	}
	words = calloc(n, sizeof(*words));
	if (!words) {
		api_reply_errno(q, -ENOMEM, "shell");
		return -ENOMEM;
	}
	json_array_foreach(argv, i, v)
		words[i] = json_string_value(v);
	*ret = words;
	return (int)n;
}

static void api_shell_on_post(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	_cleanup_free_ const char **words = NULL;
	struct smp_request *req;
	struct gw_device *d;
	json_t *body;
	int n, r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	body = api_body_object(q);
	if (!body)
		return;
	n = api_shell_argv(q, body, &words);
	if (n < 0)
		return;
	r = smp_shell_exec_request(words, (size_t)n, &req);
	if (r < 0) {
		api_reply_errno(q, r, "shell");
		return;
	}
	(void)api_device_call(q, m, d, req, api_shell_on_exec, NULL, NULL);
}

static const struct api_route api_shell_routes[] = {
    {"POST", "/api/v1/devices/{id}/shell", API_ROLE_ADMIN, 0, api_shell_on_post},
};

int api_shell_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_shell_routes, ELEMENTSOF(api_shell_routes), m);
}
