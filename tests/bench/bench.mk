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
