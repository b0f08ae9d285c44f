#!/bin/sh
# Entrypoint of the kcron image: the first argument names the program, the rest are its arguments.
#   dispatcher | kcron-dispatcher       -> kcron-dispatcher ARGS
#   worker | kcron-worker               -> kcron-worker ARGS
#   cron-producer | kcron-cron-producer -> kcron-cron-producer ARGS
#   kcron | cli                         -> kcron ARGS            (no argument: kcron --help)
#   -...                                -> kcron -...            (e.g. `docker run IMAGE --help`)
#   anything else                       -> run as given          (sh, kcat, ...)
# If KCRON_CONFIG names a file, the daemons get `--config "$KCRON_CONFIG"` before their arguments.
set -eu

if [ "$#" -eq 0 ]; then
  set -- kcron --help
fi

program="$1"
case "$program" in
  dispatcher | kcron-dispatcher) program=kcron-dispatcher ;;
  worker | kcron-worker) program=kcron-worker ;;
  cron-producer | producer | kcron-cron-producer) program=kcron-cron-producer ;;
  kcron | cli) program=kcron ;;
  -*) set -- kcron "$@"; program=kcron ;;
  *) exec "$@" ;;
esac
shift

case "$program" in
  kcron-dispatcher | kcron-worker | kcron-cron-producer)
    if [ -n "${KCRON_CONFIG:-}" ]; then
      if [ ! -r "$KCRON_CONFIG" ]; then
        echo "kcron-entrypoint: KCRON_CONFIG=$KCRON_CONFIG is not a readable file" >&2
        exit 64
      fi
      exec "$program" --config "$KCRON_CONFIG" "$@"
    fi
    ;;
esac
exec "$program" "$@"
