#!/bin/sh
# postinstall of porthole-agent: its own system user (no shell, no login),
# /etc/porthole, and systemd told about the unit. The unit
# is not enabled or started: README "Agent packages" says what comes first.
set -e
user=porthole-agent
shared="" # agents share no secret with another service
getent group "$user" >/dev/null || groupadd --system "$user"
if ! getent passwd "$user" >/dev/null; then
	useradd --system --gid "$user" --home-dir "/var/lib/$user" --no-create-home \
		--shell /usr/sbin/nologin --comment "Porthole ($user)" "$user"
fi
if [ -n "$shared" ]; then
	getent group "$shared" >/dev/null || groupadd --system "$shared"
	usermod -a -G "$shared" "$user"
fi
# Its enrollment (key, certificate) and access-log spool, written by
# `runuser -u porthole-agent -- porthole-agent enroll` before the first start (systemd's
# StateDirectory= is the same directory).
install -d -m 0700 -o "$user" -g "$user" "/var/lib/$user"
[ -d /etc/porthole ] || install -d -m 0755 -o root -g root /etc/porthole
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
