# The quick start (./quickstart, the README's first command), the demo image
# generator it uses, and the test that runs it.
noinst_PROGRAMS += tests/sim/mkimage
tests_sim_mkimage_SOURCES = tests/sim/mkimage.c
tests_sim_mkimage_CFLAGS = $(AM_CFLAGS) $(CBOR_CFLAGS) $(NETTLE_CFLAGS) $(SYSTEMD_CFLAGS)
tests_sim_mkimage_LDADD = $(SIM_LIBS)

TESTS += tests/quickstart/test-quickstart.py
# The test uses the integration tests' harness.
EXTRA_DIST += quickstart tests/quickstart/test-quickstart.py
