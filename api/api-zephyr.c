/* api-zephyr: the Zephyr basic group (63) over HTTP: erase the storage partition */
#include <errno.h>

#include "api/api.h"
#include "lib/macro.h"
#include "lib/smp-groups.h"
#include "lib/smp-zephyr.h"

static int api_zephyr_on_erased(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	json_t *o;
	int r;

	r = smp_groups_parse_empty(rsp);
	if (r < 0)
		return r;
	o = json_pack("{sb}", "erased", true);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void api_zephyr_erase_storage(struct api_req *q, void *userdata)
{
	api_device_command(q, userdata, smp_zephyr_erase_storage_request, "storage erase",
			   api_zephyr_on_erased);
}

static const struct api_route api_zephyr_routes[] = {
	{"POST", "/api/v1/devices/{id}/storage/erase", API_ROLE_ADMIN, 0, api_zephyr_erase_storage},
};

int api_zephyr_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_zephyr_routes, ELEMENTSOF(api_zephyr_routes), m);
}
