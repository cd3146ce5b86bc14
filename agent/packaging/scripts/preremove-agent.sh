#!/bin/sh
# preremove of porthole-agent: stop the service if systemd runs it.
set -e
if [ -d /run/systemd/system ]; then
	systemctl disable --now porthole-agent.service >/dev/null 2>&1 || true
fi
