# daemon/: tty discovery and probing (sd-device, watched path globs), and the
# devices of the configuration and the API.
daemon_libgw_a_SOURCES += daemon/gw-uart.c daemon/gw-uart.h daemon/gw-static.c daemon/gw-static.h

UART_TESTS = tests/daemon/test-gw-uart tests/daemon/test-gw-static
check_PROGRAMS += $(UART_TESTS)
TESTS += $(UART_TESTS)
tests_daemon_test_gw_uart_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_uart_LDADD = tests/libtesthelp.a tests/sim/libsimtest.a $(GW_LIBS) $(LIBSMP_LIBS)
tests_daemon_test_gw_static_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_static_LDADD = tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
