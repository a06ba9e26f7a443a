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
