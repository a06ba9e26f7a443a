# man/: smpgwd(8) as written; smpgwd.conf(5) from a template whose key list
# gen-conf-keys prints from smpgwd's own key table, so it cannot drift.
# Also the rest of the documentation, for the tarball.
EXTRA_DIST += doc/architecture.md doc/api.md doc/HACKING.md doc/cbor-json.md
dist_man_MANS = man/smpgwd.8
nodist_man_MANS = man/smpgwd.conf.5
EXTRA_DIST += man/smpgwd.conf.5.in
CLEANFILES += man/smpgwd.conf.5

noinst_PROGRAMS += man/gen-conf-keys
man_gen_conf_keys_SOURCES = man/gen-conf-keys.c
man_gen_conf_keys_CFLAGS = $(AM_CFLAGS)
man_gen_conf_keys_LDADD = $(GW_LIBS) $(LIBSMP_LIBS)

man/smpgwd.conf.5: $(top_srcdir)/man/smpgwd.conf.5.in man/gen-conf-keys$(EXEEXT)
	$(AM_V_GEN)$(MKDIR_P) man && \
	man/gen-conf-keys$(EXEEXT) $(top_srcdir)/man/smpgwd.conf.5.in $(PACKAGE_VERSION) > $@.tmp && \
	mv $@.tmp $@

# The pages render without a groff warning and document every option of
# "smpgwd --help" and every key of etc/smpgwd.conf.
TESTS += tests/man/test-man.sh
EXTRA_DIST += tests/man/test-man.sh
