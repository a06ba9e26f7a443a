/* api-system: the gateway itself: health, version, the OpenAPI document */
#include <cbor.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>

#include "api/api.h"
#include "api/openapi-doc.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "lib/macro.h"

/* Liveness for load balancers and probes: no token, nothing secret. */
static void system_on_health(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	size_t known = m->registry ? gw_registry_count(m->registry) : 0;
	size_t online = m->registry ? gw_registry_count_online(m->registry) : 0;

	api_reply_json(q, 200,
		       json_pack("{s:s,s:s,s:I,s:I}", "status", "ok", "version", PACKAGE_VERSION,
				 "devices", (json_int_t)known, "online", (json_int_t)online));
}

static void system_on_version(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	char cbor_version[32];

	snprintf(cbor_version, sizeof(cbor_version), "%d.%d.%d", CBOR_MAJOR_VERSION,
		 CBOR_MINOR_VERSION, CBOR_PATCH_VERSION);
	api_reply_json(q, 200,
		       json_pack("{s:s,s:i,s:{s:b,s:s,s:s,s:s}}", "version", PACKAGE_VERSION,
				 "schema", gw_manager_schema_version(m), "build", "tls",
				 MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES,
				 "libmicrohttpd", MHD_get_version(), "jansson", JANSSON_VERSION,
				 "libcbor", cbor_version));
}

static void system_on_openapi(struct api_req *q, void *userdata)
{
	api_reply_bytes(q, 200, "application/yaml", api_openapi_yaml, api_openapi_yaml_len);
}

int api_system_register(struct api_http *h, struct gw_manager *m)
{
	static const struct api_route routes[] = {
		{ "GET", "/api/v1/health", API_ROLE_NONE, 0, system_on_health },
		{ "GET", "/api/v1/version", API_ROLE_VIEWER, 0, system_on_version },
		{ "GET", "/api/v1/openapi.yaml", API_ROLE_NONE, 0, system_on_openapi },
	};

	return api_http_add_routes(h, routes, ELEMENTSOF(routes), m);
}
