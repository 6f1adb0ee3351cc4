# Build and install ironic-discoverd, its firewall helper, units and man pages.
#
#   make                      release build of every binary
#   make install DESTDIR=/tmp/root PREFIX=/usr
#   make install-files BINDIR_SRC=path/to/binaries   install without building
#   make uninstall
#
# After a real install (DESTDIR empty): systemd-sysusers; systemd-tmpfiles
# --create; set [fw_helper] allowed_uid and interfaces in discoverd.conf;
# systemctl enable --now ironic-discoverd-fw-helper.socket ironic-discoverd.

PREFIX      ?= /usr
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
MANDIR      ?= $(PREFIX)/share/man
CONFDIR     := $(SYSCONFDIR)/ironic-discoverd

CARGO      ?= cargo
# Where the binaries to install are; override to skip the build.
BINDIR_SRC ?= target/release
INSTALL    ?= install
GZIP       ?= gzip -9n

BINS  := ironic-discoverd ironic-discoverd-fw-helper ironic-discoverd-client
UNITS := ironic-discoverd.service ironic-discoverd-fw-helper.service \
         ironic-discoverd-fw-helper.socket
MAN5  := discoverd.conf.5
MAN8  := ironic-discoverd.8 ironic-discoverd-fw-helper.8

.PHONY: all build install install-files uninstall

all: build

build:
	$(CARGO) build --release --workspace --bins

install: build install-files

# Binaries that were not built (e.g. the client on a helper-only host) are
# skipped with a note. Units are rewritten for BINDIR and SYSCONFDIR.
install-files:
	@for b in $(BINS); do \
		if [ -x "$(BINDIR_SRC)/$$b" ]; then \
			echo "$(INSTALL) -D -m 0755 $(BINDIR_SRC)/$$b $(DESTDIR)$(BINDIR)/$$b"; \
			$(INSTALL) -D -m 0755 "$(BINDIR_SRC)/$$b" "$(DESTDIR)$(BINDIR)/$$b" || exit 1; \
		else \
			echo "skipping $$b: $(BINDIR_SRC)/$$b not built"; \
		fi; \
	done
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(UNITDIR)"
	@for u in $(UNITS); do \
		echo "installing $(DESTDIR)$(UNITDIR)/$$u"; \
		sed -e 's|/usr/bin/|$(BINDIR)/|g' -e 's|/etc/ironic-discoverd/|$(CONFDIR)/|g' \
			"systemd/$$u" > "$(DESTDIR)$(UNITDIR)/$$u" || exit 1; \
		chmod 0644 "$(DESTDIR)$(UNITDIR)/$$u"; \
	done
	$(INSTALL) -D -m 0644 systemd/sysusers.d/ironic-discoverd.conf "$(DESTDIR)$(SYSUSERSDIR)/ironic-discoverd.conf"
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(TMPFILESDIR)"
	sed -e 's|/etc/ironic-discoverd/|$(CONFDIR)/|g' systemd/tmpfiles.d/ironic-discoverd.conf \
		> "$(DESTDIR)$(TMPFILESDIR)/ironic-discoverd.conf"
	chmod 0644 "$(DESTDIR)$(TMPFILESDIR)/ironic-discoverd.conf"
	@# Never overwrite a configuration in use: the new one goes next to it.
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(CONFDIR)"
	@if [ -e "$(DESTDIR)$(CONFDIR)/discoverd.conf" ]; then \
		echo "keeping $(DESTDIR)$(CONFDIR)/discoverd.conf; new example in discoverd.conf.example"; \
		$(INSTALL) -m 0644 example.conf "$(DESTDIR)$(CONFDIR)/discoverd.conf.example"; \
	else \
		$(INSTALL) -m 0640 example.conf "$(DESTDIR)$(CONFDIR)/discoverd.conf"; \
	fi
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(MANDIR)/man5" "$(DESTDIR)$(MANDIR)/man8"
	@for m in $(MAN5); do $(GZIP) -c "man/$$m" > "$(DESTDIR)$(MANDIR)/man5/$$m.gz" || exit 1; done
	@for m in $(MAN8); do $(GZIP) -c "man/$$m" > "$(DESTDIR)$(MANDIR)/man8/$$m.gz" || exit 1; done
	@# The client's page is generated from its argument parser.
	@if [ -x "$(BINDIR_SRC)/ironic-discoverd-client" ]; then \
		$(INSTALL) -d -m 0755 "$(DESTDIR)$(MANDIR)/man1"; \
		"$(BINDIR_SRC)/ironic-discoverd-client" man | $(GZIP) > "$(DESTDIR)$(MANDIR)/man1/ironic-discoverd-client.1.gz" \
			|| exit 1; \
	fi

# The configuration is left in place when it differs from the example.
uninstall:
	for b in $(BINS); do rm -f "$(DESTDIR)$(BINDIR)/$$b"; done
	for u in $(UNITS); do rm -f "$(DESTDIR)$(UNITDIR)/$$u"; done
	rm -f "$(DESTDIR)$(SYSUSERSDIR)/ironic-discoverd.conf" "$(DESTDIR)$(TMPFILESDIR)/ironic-discoverd.conf"
	for m in $(MAN5); do rm -f "$(DESTDIR)$(MANDIR)/man5/$$m.gz"; done
	for m in $(MAN8); do rm -f "$(DESTDIR)$(MANDIR)/man8/$$m.gz"; done
	rm -f "$(DESTDIR)$(MANDIR)/man1/ironic-discoverd-client.1.gz"
	rm -f "$(DESTDIR)$(CONFDIR)/discoverd.conf.example"
	if cmp -s example.conf "$(DESTDIR)$(CONFDIR)/discoverd.conf"; then rm -f "$(DESTDIR)$(CONFDIR)/discoverd.conf"; fi
	-rmdir "$(DESTDIR)$(CONFDIR)" 2>/dev/null

# The README's two commands.
.PHONY: test demo
test:
	scripts/test.sh

demo:
	scripts/demo.sh
