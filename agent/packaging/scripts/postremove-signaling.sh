#!/bin/sh
# postremove of porthole-signaling: on purge (Debian) the user and its state go;
# on a plain remove, and on RPM erase, the state is kept (an agent's
# enrollment, a server's store): delete /var/lib/porthole-signaling by hand.
set -e
if [ "$1" = purge ]; then
	rm -rf /var/lib/porthole-signaling
	userdel porthole-signaling >/dev/null 2>&1 || true
	getent group porthole-signaling >/dev/null && groupdel porthole-signaling >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
