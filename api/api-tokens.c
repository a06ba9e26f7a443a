/* api-tokens: the API's bearer tokens over HTTP: list, create (the secret shown once), revoke */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "api/api.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-tokens.h"
#include "lib/macro.h"

/* The store is created with the database, before the server starts; a
 * request can only miss it in a half-built manager (tests). */
static struct gw_tokens *tokens_of(struct api_req *q, struct gw_manager *m)
{
	if (!m->tokens)
		api_reply_error(q, 500, "internal", "the token store is not open");
	return m->tokens;
}

static void tokens_on_list(struct api_req *q, void *userdata)
{
	struct gw_tokens *t = tokens_of(q, userdata);
	json_t *list = NULL;
	int r;

	if (!t)
		return;
	r = gw_tokens_list(t, &list);
	if (r < 0) {
		api_reply_errno(q, r, "listing the tokens");
		return;
	}
	api_reply_json(q, 200, json_pack("{s:o}", "tokens", list));
}

static void tokens_on_create(struct api_req *q, void *userdata)
{
	struct gw_tokens *t = tokens_of(q, userdata);
	const char *key, *name, *role;
	char *secret = NULL;
	json_t *body, *v;
	int r;

	if (!t)
		return;
	body = api_body_object(q);
	if (!body)
		return;
	json_object_foreach(body, key, v)
		if (strcmp(key, "name") != 0 && strcmp(key, "role") != 0) {
			api_reply_error(q, 400, "bad_request", "unknown member \"%s\": the body has "
					"\"name\" and \"role\"", strlen(key) <= 64 ? key : "...");
			return;
		}
	name = json_string_value(json_object_get(body, "name"));
	role = json_string_value(json_object_get(body, "role"));
	if (!name) {
		api_reply_error(q, 400, "bad_request", "\"name\" must be a string");
		return;
	}
	if (!role) {
		api_reply_error(q, 400, "bad_request", "\"role\" must be a string");
		return;
	}
	if (api_role_from_string(role) <= API_ROLE_NONE) {
		api_reply_error(q, 400, "invalid_role", "\"role\" must be viewer, operator or admin");
		return;
	}

	r = gw_tokens_create(t, name, role, &secret);
	if (r == -EINVAL) {
		api_reply_error(q, 400, "invalid_name",
				"\"name\" must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'");
		return;
	}
	if (r == -EEXIST) {
		api_reply_error(q, 409, "name_taken",
				"a token named \"%s\" exists already (revoked names stay taken)", name);
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "creating the token");
		return;
	}
	gw_notice("api", "token \"%s\" (%s) created by token \"%s\"", name, role,
		  api_req_token_name(q) ? api_req_token_name(q) : "");
	api_reply_json(q, 201, json_pack("{s:s, s:s, s:s}", "name", name, "role", role, "token",
					 secret));
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

static void tokens_on_revoke(struct api_req *q, void *userdata)
{
	struct gw_tokens *t = tokens_of(q, userdata);
	const char *name = api_req_param(q, "name");
	int r;

	if (!t)
		return;
	r = gw_tokens_revoke(t, name);
	if (r == -ENOENT) {
		/* Only a possible name is worth echoing. */
		api_reply_error(q, 404, "token_not_found", "no token named \"%s\"",
				gw_tokens_name_valid(name) ? name : "...");
		return;
	}
	if (r == -EALREADY) {
		api_reply_error(q, 409, "already_revoked", "token \"%s\" is revoked already", name);
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "revoking the token");
		return;
	}
	gw_notice("api", "token \"%s\" revoked by token \"%s\"", name,
		  api_req_token_name(q) ? api_req_token_name(q) : "");
	api_reply_json(q, 204, NULL);
}

int api_tokens_register(struct api_http *h, struct gw_manager *m)
{
	static const struct api_route routes[] = {
		{ "GET", "/api/v1/tokens", API_ROLE_ADMIN, 0, tokens_on_list },
		{ "POST", "/api/v1/tokens", API_ROLE_ADMIN, 0, tokens_on_create },
		{ "DELETE", "/api/v1/tokens/{name}", API_ROLE_ADMIN, 0, tokens_on_revoke },
	};

	return api_http_add_routes(h, routes, ELEMENTSOF(routes), m);
}
