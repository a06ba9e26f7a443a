# daemon/: the event stream (SSE's source) and the gateway counters for /metrics.
daemon_libgw_a_SOURCES += daemon/gw-events.c daemon/gw-events.h daemon/gw-metrics.c \
	daemon/gw-metrics.h

EVENTS_TESTS = tests/daemon/test-gw-events tests/daemon/test-gw-metrics
check_PROGRAMS += $(EVENTS_TESTS)
TESTS += $(EVENTS_TESTS)
tests_daemon_test_gw_events_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_events_LDADD = tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
tests_daemon_test_gw_metrics_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_metrics_LDADD = tests/sim/libsimtest.a tests/libtesthelp.a $(GW_LIBS) \
	$(LIBSMP_LIBS)
