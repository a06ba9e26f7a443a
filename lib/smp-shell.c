/* smp-shell: requests and response parser of the shell group (9) */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-groups-internal.h"
#include "smp-shell.h"

int smp_shell_exec_request(const char *const *argv, size_t argc, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (!argv || argc == 0)
		return -EINVAL;
	for (size_t i = 0; i < argc; i++)
		if (!argv[i])
			return -EINVAL;
	err = smp_request_new(SMP_OP_WRITE, SMP_GROUP_SHELL, SMP_SHELL_EXEC, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 1);
	smp_cbor_put_text(&r->pkt, "argv");
	smp_cbor_put_array(&r->pkt, argc);
	for (size_t i = 0; i < argc; i++)
		smp_cbor_put_text(&r->pkt, argv[i]);
	return smp_request_done(r, ret);
}

struct smp_shell_result *smp_shell_result_free(struct smp_shell_result *res)
{
	if (res) {
		free(res->output);
		free(res);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_shell_result *, smp_shell_result_free);

int smp_shell_exec_parse(const struct smp_response *rsp, struct smp_shell_result **ret)
{
	_cleanup_(smp_shell_result_freep) struct smp_shell_result *res = NULL;
	const cbor_item_t *root, *o;
	const uint8_t *bytes;
	size_t n;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;

	/* Output is whatever the shell printed: keep every byte, NULs included. */
	o = smp_cbor_map_get(root, "o");
	if (o && cbor_isa_string(o) && cbor_string_is_definite(o)) {
		bytes = cbor_string_handle(o);
		n = cbor_string_length(o);
	} else if (o && cbor_isa_bytestring(o) && cbor_bytestring_is_definite(o)) {
		bytes = cbor_bytestring_handle(o);
		n = cbor_bytestring_length(o);
	} else {
		return -EBADMSG;
	}

	res = calloc(1, sizeof(*res));
	if (!res)
		return -ENOMEM;
	/* smp_status_classify() already took a legacy integer "rc" beside "o" as success. */
	r = smp_groups_opt_int(root, "ret", INT64_MIN, INT64_MAX, &res->ret);
	if (r == 0)
		r = smp_groups_opt_int(root, "rc", INT64_MIN, INT64_MAX, &res->ret);
	if (r < 0)
		return r;
	if (r == 0)
		return -EBADMSG;
	res->output = malloc(n + 1);
	if (!res->output)
		return -ENOMEM;
	if (n)
		memcpy(res->output, bytes, n);
	res->output[n] = 0;
	res->output_len = n;
	*ret = TAKE_PTR(res);
	return 0;
}
