#!/bin/sh
# Run inside a sealed bottle by `make demo`: what can a hostile agent reach?
check() { # LABEL COMMAND...
    label=$1; shift
    if "$@" >/dev/null 2>&1; then echo "LEAK    $label"; else echo "refused $label"; fi
}
echo "inside bottle $(hostname) as uid $(id -u)"
check "direct HTTPS to example.com"          curl -sS -m 5 https://example.com/
check "cloud metadata 169.254.169.254"       curl -sS -m 3 http://169.254.169.254/latest/meta-data/
check "DNS lookup of example.com"            getent hosts example.com
check "the Docker socket"                    test -S /var/run/docker.sock
check "root"                                 test "$(id -u)" = 0
