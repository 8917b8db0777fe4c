#!/usr/bin/env bash
# Makes sure the services the tests talk to are running on loopback:
# RabbitMQ (127.0.0.1:5672, guest/guest) and Redis (127.0.0.1:6379).
# Installs them with apt-get when missing (the machine's user is root).
set -euo pipefail

log() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 120); do
    if port_open "$port"; then return 0; fi
    sleep 1
  done
  log "$name did not open port $port in time"; return 1
}

apt_install() {
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  apt-get install -y -qq "$@" >/dev/null
}

if ! port_open 6379; then
  command -v redis-server >/dev/null || apt_install redis-server
fi
# A fresh install may have started the service already.
if ! port_open 6379; then
  log "starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 redis
fi

if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
fi
if ! port_open 5672; then
  log "starting rabbitmq"
  rabbitmq-server -detached || log "rabbitmq-server -detached failed; waiting for the port anyway"
  wait_port 5672 rabbitmq
fi

# The broker accepts connections a little before it accepts logins.
for _ in $(seq 1 60); do
  if rabbitmqctl -q status >/dev/null 2>&1 || ! command -v rabbitmqctl >/dev/null; then break; fi
  sleep 1
done
log "redis and rabbitmq are up"
