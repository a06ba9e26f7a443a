# daemon/ + db/: auto-update rules (standing rollouts for matching devices) and their table.
db_libdb_a_SOURCES += db/db-auto-updates.c db/db-auto-updates.h
daemon_libgw_a_SOURCES += daemon/gw-autoupdate.c daemon/gw-autoupdate.h

AUTOUPDATE_TESTS = tests/daemon/test-gw-autoupdate
check_PROGRAMS += $(AUTOUPDATE_TESTS)
TESTS += $(AUTOUPDATE_TESTS)
tests_daemon_test_gw_autoupdate_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_autoupdate_LDADD = tests/sim/libsimtest.a tests/sim/libsim.a \
	tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
