# Benchmarks (tests/bench/README.md): never run by make check. `make bench`
# builds and runs bench-libsmp; the program is noinst so that it always builds.
noinst_PROGRAMS += tests/bench/bench-libsmp
tests_bench_bench_libsmp_SOURCES = tests/bench/bench-libsmp.c
tests_bench_bench_libsmp_CFLAGS = $(TEST_CFLAGS)
tests_bench_bench_libsmp_LDADD = tests/unit/libclienttest.a $(TEST_LIBS)
EXTRA_DIST += tests/bench/README.md

.PHONY: bench
bench: tests/bench/bench-libsmp$(EXEEXT)
	tests/bench/bench-libsmp $(BENCH_ARGS)

# bench-daemon: smpgwd with 1,000 idle devices and uploads through its shared
# client against link limits (tests/bench/README.md). Needs smpgwd and smp-sim.
noinst_PROGRAMS += tests/bench/bench-daemon
tests_bench_bench_daemon_SOURCES = tests/bench/bench-daemon.c
tests_bench_bench_daemon_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_bench_bench_daemon_LDADD = tests/sim/libsimtest.a tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)

.PHONY: bench-daemon
bench-daemon: tests/bench/bench-daemon$(EXEEXT) smpgwd$(EXEEXT) tests/sim/smp-sim$(EXEEXT)
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
		tests/bench/bench-daemon $(BENCH_DAEMON_ARGS)

# bench-rollout: a 1,000-device rollout through smpgwd: wall time against the
# ideal, daemon CPU, sqlite writes per job (tests/bench/README.md).
EXTRA_DIST += tests/bench/bench-rollout.py
.PHONY: bench-rollout
bench-rollout: smpgwd$(EXEEXT) tests/sim/smp-sim$(EXEEXT) tests/sim/mkimage$(EXEEXT)
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
		$(PYTHON3) $(srcdir)/tests/bench/bench-rollout.py $(BENCH_ROLLOUT_ARGS)

# bench-api: wrk against GET /api/v1/devices (1,000 devices) and /metrics of
# smpgwd, beside a private nginx serving the same bytes (tests/bench/README.md).
# Installs wrk and nginx with apt-get when missing (as root).
EXTRA_DIST += tests/bench/bench-api.py
.PHONY: bench-api
bench-api: smpgwd$(EXEEXT) tests/sim/smp-sim$(EXEEXT)
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
		$(PYTHON3) $(srcdir)/tests/bench/bench-api.py $(BENCH_API_ARGS)
