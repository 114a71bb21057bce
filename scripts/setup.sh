#!/usr/bin/env bash
# Installs what rollout and its demo stack need on a fresh Debian machine, idempotently:
# apt packages (busybox-static, redis-server for the scratch images; docker.io and
# docker-compose when no engine answers), a running dockerd, and the venv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd || need_apt+=(busybox-static)
command -v redis-server >/dev/null || [ -e /usr/bin/redis-server ] || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
# the SSH-host test runs a real sshd on 127.0.0.1
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
docker_ok() { docker info >/dev/null 2>&1; }
if ! docker_ok; then
    command -v dockerd >/dev/null || need_apt+=(docker.io)
fi
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need_apt+=(docker-compose)
PY=$(command -v python3.11 || command -v python3)
"$PY" -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! docker_ok; then
    echo "setup: starting dockerd"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do docker_ok && break; sleep 1; done
    docker_ok || { echo "setup: dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi

# The venv is rebuilt only when pyproject.toml changed since the last install.
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
    echo "setup: creating .venv and installing rollout"
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[test]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi
