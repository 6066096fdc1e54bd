# Builds and installs kmod-rs: the kmod binary, the six tool names linked to it, the
# manual pages and the shell completions. See docs/install.md.
#
#   make                                  cargo build --release
#   make install PREFIX=/usr DESTDIR=...  install (building first if needed)
#   make uninstall PREFIX=/usr DESTDIR=...

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
CARGO ?= cargo
# The binary to install: a different build (static, cross-compiled) can be named.
KMOD_BIN ?= target/release/kmod

TOOLS := depmod insmod lsmod modinfo modprobe rmmod
PAGES := $(notdir $(wildcard man/*.[58]))
# Extra names for pages that document several files.
PAGE_LINKS := modules.dep.bin.5:modules.dep.5

# The tools are links to the binary, relative so that the tree can be moved (and
# staged under DESTDIR); computed on the final paths, without following symlinks
# of the machine building the tree.
KMOD_LINK = $(shell realpath -s -m --relative-to='$(SBINDIR)' '$(BINDIR)/kmod')

.PHONY: all install uninstall

all:
	$(CARGO) build --release --locked

# Each shell looks a command's completion up by the command's name: one script per
# shell serves all seven, linked under each name where the shell needs a file each.

# Built here only when missing, so that "sudo make install" after "make" does not
# run cargo as root.
target/release/kmod:
	$(CARGO) build --release --locked

install: $(KMOD_BIN)
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(SBINDIR)' \
		'$(DESTDIR)$(MANDIR)/man5' '$(DESTDIR)$(MANDIR)/man8' \
		'$(DESTDIR)$(BASHCOMPDIR)' '$(DESTDIR)$(ZSHCOMPDIR)' '$(DESTDIR)$(FISHCOMPDIR)'
	install -m 755 '$(KMOD_BIN)' '$(DESTDIR)$(BINDIR)/kmod'
	for tool in $(TOOLS); do \
		ln -sfn '$(KMOD_LINK)' '$(DESTDIR)$(SBINDIR)/'$$tool || exit 1; \
	done
	for page in $(PAGES); do \
		install -m 644 man/$$page '$(DESTDIR)$(MANDIR)/man'$${page##*.}/ || exit 1; \
	done
	for link in $(PAGE_LINKS); do \
		name=$${link%%:*}; \
		ln -sfn $${link#*:} '$(DESTDIR)$(MANDIR)/man'$${name##*.}/$$name || exit 1; \
	done
	install -m 644 completions/bash/kmod '$(DESTDIR)$(BASHCOMPDIR)/kmod'
	install -m 644 completions/zsh/_kmod '$(DESTDIR)$(ZSHCOMPDIR)/_kmod'
	install -m 644 completions/fish/kmod.fish '$(DESTDIR)$(FISHCOMPDIR)/kmod.fish'
	for tool in $(TOOLS); do \
		ln -sfn kmod '$(DESTDIR)$(BASHCOMPDIR)/'$$tool && \
		ln -sfn kmod.fish '$(DESTDIR)$(FISHCOMPDIR)/'$$tool.fish || exit 1; \
	done

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/kmod' '$(DESTDIR)$(ZSHCOMPDIR)/_kmod' \
		'$(DESTDIR)$(BASHCOMPDIR)/kmod' '$(DESTDIR)$(FISHCOMPDIR)/kmod.fish'
	for tool in $(TOOLS); do \
		rm -f '$(DESTDIR)$(SBINDIR)/'$$tool '$(DESTDIR)$(BASHCOMPDIR)/'$$tool \
			'$(DESTDIR)$(FISHCOMPDIR)/'$$tool.fish; \
	done
	for page in $(PAGES) $(foreach link,$(PAGE_LINKS),$(firstword $(subst :, ,$(link)))); do \
		rm -f '$(DESTDIR)$(MANDIR)/man'$${page##*.}/$$page; \
	done
