# daemon/ + db/: the rollout engine (a durable job queue per rollout) and its tables.
db_libdb_a_SOURCES += db/db-rollouts.c db/db-rollouts.h \
	db/db-jobs.c db/db-jobs.h
daemon_libgw_a_SOURCES += daemon/gw-rollouts.c daemon/gw-rollouts.h \
	daemon/gw-rollout-internal.h daemon/gw-rollout-job.c daemon/gw-rollout-sched.c

ROLLOUTS_TESTS = tests/db/test-db-rollouts tests/daemon/test-gw-rollouts
check_PROGRAMS += $(ROLLOUTS_TESTS)
TESTS += $(ROLLOUTS_TESTS)
tests_db_test_db_rollouts_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_db_test_db_rollouts_LDADD = tests/libtesthelp.a $(DB_LIBS) $(LIBSMP_LIBS)
tests_daemon_test_gw_rollouts_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_rollouts_LDADD = tests/sim/libsimtest.a tests/libtesthelp.a $(GW_LIBS) \
	$(LIBSMP_LIBS)
