# api/: the event stream (Server-Sent Events) and the Prometheus metrics.
api_libapi_a_SOURCES += api/api-events.c api/api-metrics.c api/api-metrics.h

# Black-box: smpgwd against smp-sim, the event stream and /metrics.
TESTS += tests/integration/test-api-events-metrics.py
EXTRA_DIST += tests/integration/test-api-events-metrics.py

# The route over real sockets (slow and vanishing clients) and the exposition text.
check_PROGRAMS += tests/api/test-api-events
TESTS += tests/api/test-api-events
tests_api_test_api_events_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_api_test_api_events_LDADD = tests/libtesthelp.a $(API_LIBS) $(GW_LIBS) $(LIBSMP_LIBS)
