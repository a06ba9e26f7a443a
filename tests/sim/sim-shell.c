/* sim-shell: a few Zephyr shell commands behind the shell group's exec */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "sim-device.h"
#include "sim-image.h"
#include "sim-shell.h"
#include "smp-cbor.h"
#include "smp-error.h"

/* CONFIG_SHELL_CMD_BUFF_SIZE, CONFIG_SHELL_BACKEND_DUMMY_BUF_SIZE, CONFIG_SHELL_ARGC_MAX. */
#define SIM_SHELL_LINE_MAX 256
#define SIM_SHELL_OUT_MAX 300
#define SIM_SHELL_ARGC_MAX 20
/* Zephyr's shell_execute_cmd() result when it printed help instead. */
#define SIM_SHELL_CMD_HELP_PRINTED 1

struct sim_shell_out {
	char buf[SIM_SHELL_OUT_MAX + 1];
	size_t len;
};

static void sim_shell_put(struct sim_shell_out *o, const char *s)
{
	size_t n = strlen(s);

	/* The dummy backend keeps what fits and drops the rest. */
	n = MIN(n, SIM_SHELL_OUT_MAX - o->len);
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = 0;
}

static _printf_(3, 0) void sim_shell_vprint(struct sim_shell_out *o, bool error, const char *fmt,
					    va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	if (error)
		sim_shell_put(o, "\x1b[1;31m");
	/* The shell turns every "\n" into "\r\n". */
	for (char *p = line, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl) {
			sim_shell_put(o, p);
			break;
		}
		*nl = 0;
		sim_shell_put(o, p);
		sim_shell_put(o, "\r\n");
	}
	sim_shell_put(o, "\r\n");
	if (error)
		sim_shell_put(o, "\x1b[m");
}

static _printf_(2, 3) void sim_shell_print(struct sim_shell_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sim_shell_vprint(o, false, fmt, ap);
	va_end(ap);
}

static _printf_(2, 3) void sim_shell_error(struct sim_shell_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sim_shell_vprint(o, true, fmt, ap);
	va_end(ap);
}

struct sim_shell_cmd {
	const char *name;
	const char *help;
	int (*fn)(struct sim_ctx *c, struct sim_shell_out *o, int argc, char **argv);
	const struct sim_shell_cmd *sub; /* NULL-name terminated */
};

static int sim_shell_not_found(struct sim_shell_out *o, const char *name)
{
	sim_shell_error(o, "%s: command not found", name);
	return -ENOEXEC;
}

static void sim_shell_help_of(struct sim_shell_out *o, const char *title, const char *help,
			      const struct sim_shell_cmd *sub)
{
	if (title)
		sim_shell_print(o, "%s - %s", title, help);
	sim_shell_print(o, "%s:", title ? "Subcommands" : "Available commands");
	for (const struct sim_shell_cmd *s = sub; s->name; s++)
		sim_shell_print(o, "  %-10s: %s", s->name, s->help);
}

static int sim_shell_echo(struct sim_ctx *c, struct sim_shell_out *o, int argc, char **argv)
{
	char line[SIM_SHELL_LINE_MAX + 1] = "";
	size_t n = 0;

	for (int i = 1; i < argc; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - MIN(n, sizeof(line)), "%s%s",
				      i > 1 ? " " : "", argv[i]);
	sim_shell_print(o, "%s", line);
	return 0;
}

static int sim_shell_uptime(struct sim_ctx *c, struct sim_shell_out *o, int argc, char **argv)
{
	sim_shell_print(o, "Uptime: %u ms", (unsigned)sim_device_uptime_ms(c->dev));
	return 0;
}

static int sim_shell_version(struct sim_ctx *c, struct sim_shell_out *o, int argc, char **argv)
{
	sim_shell_print(o, "Zephyr version %s", sim_device_info(c->dev, SIM_INFO_VERSION));
	return 0;
}

static int sim_shell_cycles(struct sim_ctx *c, struct sim_shell_out *o, int argc, char **argv)
{
	/* A 32768 Hz system timer, like an nRF's RTC. */
	sim_shell_print(o, "cycles: %u hw cycles",
			(unsigned)(sim_device_uptime_ms(c->dev) * 32768 / 1000));
	return 0;
}

static int sim_shell_reboot(struct sim_ctx *c, struct sim_shell_out *o, int argc, char **argv)
{
	/* sys_reboot() does not return: the SMP response is never sent. */
	c->power_loss = true;
	return 0;
}

static int sim_shell_mcuboot(struct sim_ctx *c, struct sim_shell_out *o, int argc, char **argv)
{
	char text[512];

	sim_image_describe(sim_device_image(c->dev), text, sizeof(text));
	if (*text && text[strlen(text) - 1] == '\n')
		text[strlen(text) - 1] = 0;
	sim_shell_print(o, "%s", text);
	return 0;
}

static int sim_shell_mcuboot_confirm(struct sim_ctx *c, struct sim_shell_out *o, int argc,
				     char **argv)
{
	int r = sim_image_confirm_running(sim_device_image(c->dev));

	if (r < 0) {
		sim_shell_error(o, "failed to confirm: %d", r);
		return r;
	}
	sim_shell_print(o, "Image confirmed");
	return 0;
}

static const struct sim_shell_cmd sim_shell_kernel[] = {
    {"cycles", "Kernel cycles.", sim_shell_cycles, NULL},
    {"reboot", "Reboot.", sim_shell_reboot, NULL},
    {"uptime", "Kernel uptime.", sim_shell_uptime, NULL},
    {"version", "Kernel version.", sim_shell_version, NULL},
    {NULL, NULL, NULL, NULL},
};

static const struct sim_shell_cmd sim_shell_mcuboot_sub[] = {
    {"confirm", "Confirm the running image.", sim_shell_mcuboot_confirm, NULL},
    {NULL, NULL, NULL, NULL},
};

static const struct sim_shell_cmd sim_shell_root[] = {
    {"echo", "Print the arguments.", sim_shell_echo, NULL},
    {"help", "Prints the help message.", NULL, NULL},
    {"kernel", "Kernel commands", NULL, sim_shell_kernel},
    {"mcuboot", "MCUboot commands", sim_shell_mcuboot, sim_shell_mcuboot_sub},
    {NULL, NULL, NULL, NULL},
};

static int sim_shell_run(struct sim_ctx *c, struct sim_shell_out *o, int argc, char **argv)
{
	const struct sim_shell_cmd *table = sim_shell_root, *cmd = NULL;
	int depth = 0;

	if (argc == 0)
		return 0;
	if (!strcmp(argv[0], "help")) {
		sim_shell_help_of(o, NULL, NULL, sim_shell_root);
		return 0;
	}
	for (;;) {
		const struct sim_shell_cmd *next = NULL;

		for (const struct sim_shell_cmd *s = table; s->name; s++)
			if (!strcmp(s->name, argv[depth]))
				next = s;
		if (!next) {
			if (cmd && cmd->fn)
				break; /* extra arguments go to the parent's handler */
			return sim_shell_not_found(o, argv[depth]);
		}
		cmd = next;
		depth++;
		if (!cmd->sub || depth == argc)
			break;
		table = cmd->sub;
	}
	if (!cmd->fn) {
		sim_shell_help_of(o, cmd->name, cmd->help, cmd->sub);
		return SIM_SHELL_CMD_HELP_PRINTED;
	}
	return cmd->fn(c, o, argc - depth + 1, argv + depth - 1);
}

int sim_shell_exec(struct sim_ctx *c)
{
	const cbor_item_t *argv_item = smp_cbor_map_get(c->map, "argv");
	char line[SIM_SHELL_LINE_MAX + 1];
	char *argv[SIM_SHELL_ARGC_MAX + 1];
	struct sim_shell_out out = {.len = 0};
	size_t len = 0, n;
	int argc = 0, ret;

	if (!c->map || !argv_item || !cbor_isa_array(argv_item))
		return SMP_RC_EINVAL;
	n = cbor_array_size(argv_item);
	for (size_t i = 0; i < n; i++) {
		cbor_item_t *v = cbor_array_handle(argv_item)[i];
		size_t vl;

		/* zcbor stops at the first element that is not a text string. */
		if (!cbor_isa_string(v) || !cbor_string_is_definite(v))
			break;
		vl = cbor_string_length(v);
		if (len + vl >= SIM_SHELL_LINE_MAX) {
			sim_rsp_err(c, SMP_GROUP_SHELL, SIM_SHELL_ERR_COMMAND_TOO_LONG);
			return 0;
		}
		memcpy(line + len, cbor_string_handle(v), vl);
		len += vl + 1;
		line[len - 1] = ' ';
	}
	if (len == 0) {
		sim_rsp_err(c, SMP_GROUP_SHELL, SIM_SHELL_ERR_EMPTY_COMMAND);
		return 0;
	}
	line[len - 1] = 0;

	/* The shell splits the line again on blanks. */
	for (char *p = line, *save = NULL, *tok; (tok = strtok_r(p, " \t", &save)); p = NULL) {
		if (argc == SIM_SHELL_ARGC_MAX) {
			sim_shell_put(&out, "\r\n");
			sim_shell_error(&out, "Too many parameters (max %d)", SIM_SHELL_ARGC_MAX);
			ret = -ENOEXEC;
			goto done;
		}
		argv[argc++] = tok;
	}
	argv[argc] = NULL;
	/* The newline the shell prints after reading a command. */
	sim_shell_put(&out, "\r\n");
	ret = sim_shell_run(c, &out, argc, argv);
done:
	smp_cbor_put_text(&c->rsp, "o");
	smp_cbor_put_textn(&c->rsp, out.buf, out.len);
	smp_cbor_put_text(&c->rsp, "ret");
	smp_cbor_put_int(&c->rsp, ret);
	return 0;
}
