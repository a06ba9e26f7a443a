# api/: the device routes (the device list and CRUD, OS, image, stat, enum,
# Zephyr basic, raw SMP) and what they share; daemon/gw-reported, the JSON
# of the reported sections, shared with the poller.
daemon_libgw_a_SOURCES += daemon/gw-reported.c daemon/gw-reported.h
api_libapi_a_SOURCES += \
	api/api-devices.c \
	api/api-os.c \
	api/api-image.c \
	api/api-stat.c \
	api/api-enum.c \
	api/api-zephyr.c \
	api/api-raw.c \
	api/api-device-seq.c api/api-device-seq.h \
	api/api-field.c api/api-field.h \
	api/api-reported.c api/api-reported.h

check_PROGRAMS += tests/daemon/test-gw-reported
TESTS += tests/daemon/test-gw-reported
tests_daemon_test_gw_reported_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_gw_reported_LDADD = tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)

# Black-box: smpgwd against smp-sim, every device route.
TESTS += tests/integration/test-api-device-routes.py
EXTRA_DIST += tests/integration/test-api-device-routes.py
