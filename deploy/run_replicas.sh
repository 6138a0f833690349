#!/usr/bin/env bash
# Several Quantization Explorer replicas behind nginx on this machine.
#
#   deploy/run_replicas.sh N PORT   start N replicas on PORT+1..PORT+N and nginx on PORT; returns when all are warm
#   deploy/run_replicas.sh status   each replica's and nginx's health
#   deploy/run_replicas.sh stop     stop them all (replicas with their job workers, and nginx)
#
# Uses the Python of the active environment (QE_PYTHON to choose another). Settings: see deploy/replicas.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${QE_PYTHON:-$(command -v python || command -v python3)}"
exec "$PY" -m deploy.replicas "$@"
