#!/bin/sh
# postinstall of porthole-signaling: its own system user (no shell, no login),
# /etc/porthole, and systemd told about the unit. The unit
# is not enabled or started: README "Install a server" says what comes first.
set -e
user=porthole-signaling
shared=porthole # signaling and turn both read /etc/porthole/turn.secret (group porthole)
getent group "$user" >/dev/null || groupadd --system "$user"
if ! getent passwd "$user" >/dev/null; then
	useradd --system --gid "$user" --home-dir "/var/lib/$user" --no-create-home \
		--shell /usr/sbin/nologin --comment "Porthole ($user)" "$user"
fi
if [ -n "$shared" ]; then
	getent group "$shared" >/dev/null || groupadd --system "$shared"
	usermod -a -G "$shared" "$user"
fi
# Its store, written by `runuser -u porthole-signaling -- porthole-signaling
# admin …` before the first start (systemd's
# StateDirectory= is the same directory).
install -d -m 0700 -o "$user" -g "$user" "/var/lib/$user"
[ -d /etc/porthole ] || install -d -m 0755 -o root -g root /etc/porthole
# Its settings may name secrets: readable by root and the service only.
if [ -f /etc/porthole/signaling.conf ]; then
	chgrp "$user" /etc/porthole/signaling.conf
	chmod 0640 /etc/porthole/signaling.conf
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
