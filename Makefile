# Install layout for packagers:
#   make install DESTDIR=/tmp/pkg PREFIX=/usr
# builds release binaries (unless NO_BUILD=1 with BINDIR_SRC pointing at
# built binaries) and installs binaries, systemd units, sysusers.d and
# tmpfiles.d entries, the example configuration and gzipped man pages.

PREFIX      ?= /usr
DESTDIR     ?=
SYSCONFDIR  ?= /etc
BINDIR       = $(PREFIX)/bin
UNITDIR      = $(PREFIX)/lib/systemd/system
SYSUSERSDIR  = $(PREFIX)/lib/sysusers.d
TMPFILESDIR  = $(PREFIX)/lib/tmpfiles.d
MANDIR       = $(PREFIX)/share/man
BINDIR_SRC  ?= target/release
BINARIES     = ironic-discoverd ironic-discoverd-fw-helper ironic-discoverd-client
UNITS        = ironic-discoverd.service ironic-discoverd-fw-helper.service ironic-discoverd-fw-helper.socket
INSTALL     ?= install

.PHONY: all build install install-files uninstall test demo

all: build

build:
ifneq ($(NO_BUILD),1)
	cargo build --release --locked --bins
endif

install: build install-files

install-files:
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/ironic-discoverd \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	for b in $(BINARIES); do $(INSTALL) -m 0755 $(BINDIR_SRC)/$$b $(DESTDIR)$(BINDIR)/$$b; done
	for u in $(UNITS); do $(INSTALL) -m 0644 systemd/$$u $(DESTDIR)$(UNITDIR)/$$u; done
	$(INSTALL) -m 0644 systemd/ironic-discoverd.sysusers $(DESTDIR)$(SYSUSERSDIR)/ironic-discoverd.conf
	$(INSTALL) -m 0644 systemd/ironic-discoverd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/ironic-discoverd.conf
	# Never overwrite an operator's configuration.
	if [ -e $(DESTDIR)$(SYSCONFDIR)/ironic-discoverd/discoverd.conf ]; then \
		$(INSTALL) -m 0640 example.conf $(DESTDIR)$(SYSCONFDIR)/ironic-discoverd/discoverd.conf.example; \
	else \
		$(INSTALL) -m 0640 example.conf $(DESTDIR)$(SYSCONFDIR)/ironic-discoverd/discoverd.conf; \
	fi
	gzip -9nc man/ironic-discoverd.8 > $(DESTDIR)$(MANDIR)/man8/ironic-discoverd.8.gz
	gzip -9nc man/ironic-discoverd-fw-helper.8 > $(DESTDIR)$(MANDIR)/man8/ironic-discoverd-fw-helper.8.gz
	gzip -9nc man/discoverd.conf.5 > $(DESTDIR)$(MANDIR)/man5/discoverd.conf.5.gz
	$(BINDIR_SRC)/ironic-discoverd-client man | gzip -9n > $(DESTDIR)$(MANDIR)/man1/ironic-discoverd-client.1.gz

uninstall:
	for b in $(BINARIES); do rm -f $(DESTDIR)$(BINDIR)/$$b; done
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	rm -f $(DESTDIR)$(SYSUSERSDIR)/ironic-discoverd.conf $(DESTDIR)$(TMPFILESDIR)/ironic-discoverd.conf
	rm -f $(DESTDIR)$(MANDIR)/man8/ironic-discoverd.8.gz $(DESTDIR)$(MANDIR)/man8/ironic-discoverd-fw-helper.8.gz
	rm -f $(DESTDIR)$(MANDIR)/man5/discoverd.conf.5.gz $(DESTDIR)$(MANDIR)/man1/ironic-discoverd-client.1.gz

test:
	scripts/test.sh

demo:
	scripts/demo.sh
