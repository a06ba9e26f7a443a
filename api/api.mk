# api/: the REST API: libmicrohttpd on the daemon's loop, routes, JSON, the OpenAPI document.
noinst_LIBRARIES += api/libapi.a
api_libapi_a_SOURCES = api/api-http.c api/api-http.h api/api.c api/api.h \
	api/api-device.c api/api-device-cache.c api/api-device-cache.h api/api-system.c \
	api/openapi-doc.h
nodist_api_libapi_a_SOURCES = api/openapi-doc.c
api_libapi_a_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JANSSON_CFLAGS) $(SYSTEMD_CFLAGS) $(CBOR_CFLAGS)
API_LIBS = api/libapi.a $(MHD_LIBS)

# api/openapi.yaml: head.yaml, every api/openapi/*.paths.yaml in sorted (C
# locale) order, components.yaml, every *.schemas.yaml. Resource helpers only
# drop their files in api/openapi/. The document is put together on every
# build and replaced only when it changed, so that a new fragment is never
# missed and an unchanged one rebuilds nothing.
EXTRA_DIST += api/openapi api/embed-openapi.sh
api/openapi.yaml: api-openapi-assemble
	@:
api-openapi-assemble:
	$(AM_V_GEN)$(MKDIR_P) api && LC_ALL=C && export LC_ALL && \
	d=$(srcdir)/api/openapi && \
	cat $$d/head.yaml $$(ls $$d/*.paths.yaml 2>/dev/null | sort) $$d/components.yaml \
		$$(ls $$d/*.schemas.yaml 2>/dev/null | sort) > api/openapi.yaml.tmp && \
	if cmp -s api/openapi.yaml.tmp api/openapi.yaml; then rm -f api/openapi.yaml.tmp; \
	else mv api/openapi.yaml.tmp api/openapi.yaml; fi
.PHONY: api-openapi-assemble
api/openapi-doc.c: api/openapi.yaml $(srcdir)/api/embed-openapi.sh
	$(AM_V_GEN)$(SHELL) $(srcdir)/api/embed-openapi.sh $@ api/openapi.yaml
BUILT_SOURCES += api/openapi.yaml api/openapi-doc.c
CLEANFILES += api/openapi.yaml api/openapi-doc.c

# Tests: the server over real sockets; the router against the document.
check_LIBRARIES += tests/api/libhttpclient.a
tests_api_libhttpclient_a_SOURCES = tests/api/http-client.c tests/api/http-client.h
tests_api_libhttpclient_a_CFLAGS = $(TEST_CFLAGS)
check_PROGRAMS += tests/api/test-api-http tests/api/test-api-device tests/api/list-routes
TESTS += tests/api/test-api-http tests/api/test-api-device tests/api/test-openapi.py
EXTRA_DIST += tests/api/test-openapi.py
tests_api_test_api_http_CFLAGS = $(TEST_CFLAGS) $(MHD_CFLAGS)
tests_api_test_api_http_LDADD = tests/api/libhttpclient.a tests/libtesthelp.a $(API_LIBS) $(GW_LIBS) \
	$(LIBSMP_LIBS) $(NETTLE_LIBS) -lpthread
tests_api_test_api_device_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_api_test_api_device_LDADD = tests/api/libhttpclient.a tests/sim/libsimtest.a \
	tests/libtesthelp.a $(API_LIBS) $(GW_LIBS) $(LIBSMP_LIBS) -lpthread
tests_api_list_routes_CFLAGS = $(TEST_CFLAGS)
tests_api_list_routes_LDADD = $(API_LIBS) $(GW_LIBS) $(LIBSMP_LIBS)
TESTS += tests/integration/test-api-system.py
EXTRA_DIST += tests/integration/test-api-system.py
