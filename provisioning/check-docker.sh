#!/bin/sh
# Can the login user use Docker Engine on SOCKET? For rbottle; changes nothing.
#
# Run as the login user, the script on stdin:
#   sh -s -- [SOCKET] <check-docker.sh      (SOCKET default /var/run/docker.sock)
#
# Prints one line "rbottle-check: STATE [DETAIL]", STATE one of:
#   ready        the engine answers on SOCKET (DETAIL: its version, when known)
#   no-access    SOCKET exists but this user may not use it (not in its group)
#   not-running  dockerd is installed but nothing answers on SOCKET
#   missing      there is no dockerd
# Exit status: 0 when ready, 1 otherwise.
set -eu

SOCKET=${1:-/var/run/docker.sock}
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

if [ -S "$SOCKET" ]; then
    if [ ! -w "$SOCKET" ]; then
        echo "rbottle-check: no-access"
        exit 1
    fi
    if command -v docker >/dev/null 2>&1; then
        if version=$(timeout 20 docker -H "unix://$SOCKET" version --format '{{.Server.Version}}' 2>/dev/null); then
            echo "rbottle-check: ready $version"
            exit 0
        fi
    elif command -v curl >/dev/null 2>&1; then
        if timeout 20 curl -fsS --unix-socket "$SOCKET" http://localhost/_ping >/dev/null 2>&1; then
            echo "rbottle-check: ready"
            exit 0
        fi
    else
        # Nothing here speaks HTTP on a unix socket; the tunnel's ping will tell.
        echo "rbottle-check: ready"
        exit 0
    fi
fi
if command -v dockerd >/dev/null 2>&1; then
    echo "rbottle-check: not-running"
else
    echo "rbottle-check: missing"
fi
exit 1
