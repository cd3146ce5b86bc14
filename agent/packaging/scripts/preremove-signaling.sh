#!/bin/sh
# preremove of porthole-signaling: stop the service if systemd runs it.
set -e
if [ -d /run/systemd/system ]; then
	systemctl disable --now porthole-signaling.service >/dev/null 2>&1 || true
fi
