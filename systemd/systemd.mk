# systemd/: the service, its optional socket, and the sysusers.d/tmpfiles.d
# snippets; installed under the directories configure chose (--with-systemdsystemunitdir,
# --with-sysusersdir, --with-tmpfilesdir; PREFIX-relative by default).
systemdsystemunit_DATA = systemd/smpgwd.service systemd/smpgwd.socket
sysusers_DATA = systemd/sysusers.d/smpgwd.conf
tmpfiles_DATA = systemd/tmpfiles.d/smpgwd.conf
EXTRA_DIST += systemd/smpgwd.service.in systemd/smpgwd.socket systemd/smpgwd.sysusers \
	systemd/smpgwd.tmpfiles
CLEANFILES += systemd/smpgwd.service systemd/sysusers.d/smpgwd.conf \
	systemd/tmpfiles.d/smpgwd.conf

# Paths are filled in at make time so "make prefix=..." is honoured too.
systemd/smpgwd.service: $(top_srcdir)/systemd/smpgwd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
		$(top_srcdir)/systemd/smpgwd.service.in > $@.tmp && mv $@.tmp $@
# Both snippets install as smpgwd.conf: each gets its own build directory.
systemd/sysusers.d/smpgwd.conf: $(top_srcdir)/systemd/smpgwd.sysusers
	$(AM_V_GEN)$(MKDIR_P) systemd/sysusers.d && cp $(top_srcdir)/systemd/smpgwd.sysusers $@
systemd/tmpfiles.d/smpgwd.conf: $(top_srcdir)/systemd/smpgwd.tmpfiles
	$(AM_V_GEN)$(MKDIR_P) systemd/tmpfiles.d && cp $(top_srcdir)/systemd/smpgwd.tmpfiles $@

# The default configuration, as /etc/smpgw/smpgwd.conf (the unit's --config).
smpgwconfdir = $(sysconfdir)/smpgw
smpgwconf_DATA = etc/smpgwd.conf

# The OpenAPI document (api/api.mk puts it together), for whoever writes clients.
pkgdata_DATA = api/openapi.yaml

# Checks of what "make install" lays down: units verified and scored by
# systemd-analyze, sysusers/tmpfiles applied to a scratch root.
TESTS += tests/systemd/test-units.sh
EXTRA_DIST += tests/systemd/test-units.sh

# For tests/systemd/test-units.sh: where "make install" puts things.
print-install-dirs:
	@echo "sbindir=$(sbindir)"; \
	echo "sysconfdir=$(sysconfdir)"; \
	echo "mandir=$(mandir)"; \
	echo "pkgdatadir=$(pkgdatadir)"; \
	echo "systemdsystemunitdir=$(systemdsystemunitdir)"; \
	echo "sysusersdir=$(sysusersdir)"; \
	echo "tmpfilesdir=$(tmpfilesdir)"
.PHONY: print-install-dirs
