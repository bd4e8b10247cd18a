#!/usr/bin/env bash
# Entry point of the jobs image. The Flink Kubernetes Operator (native mode) starts the JobManager and
# the TaskManagers as `/docker-entrypoint.sh bash -c "kubernetes-jobmanager.sh ..."` (Flink's
# kubernetes.entry.path); Flink's own image runs its arguments the same way, after its own setup.
set -euo pipefail
export PATH="${FLINK_HOME}/bin:${PATH}"
if [ "${1:-help}" = "help" ]; then
    echo "nextwatch jobs image: started by the Flink Kubernetes Operator (see docs/deploy.md)"
    exit 0
fi
exec "$@"
