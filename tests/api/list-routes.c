/* list-routes: prints every route of the REST API as "METHOD PATTERN ROLE", for test-openapi.py */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "daemon/gw-manager.h"

static void print_route(const struct api_route *r, void *userdata)
{
	printf("%s %s %s\n", r->method, r->pattern, api_role_to_string(r->role));
}

int main(void)
{
	struct api_http_config cfg = { .listen = "127.0.0.1:0" };
	/* Registration must not touch the manager: a zeroed one proves it. */
	struct gw_manager m;
	struct api_http *h = NULL;
	sd_event *e = NULL;
	int r;

	memset(&m, 0, sizeof(m));
	r = sd_event_new(&e);
	if (r >= 0)
		r = api_http_new(e, &cfg, &h);
	if (r >= 0)
		r = api_register(h, &m);
	if (r < 0) {
		fprintf(stderr, "list-routes: cannot register the routes: %s\n", strerror(-r));
		return 1;
	}
	api_http_foreach_route(h, print_route, NULL);
	api_http_free(h);
	sd_event_unref(e);
	return fflush(stdout) == 0 ? 0 : 1;
}
