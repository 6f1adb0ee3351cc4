# Shared by the scripts that run a service in the background
# (ironic-standalone.sh, keystone.sh, inspector.sh, and the benchmarks'
# bench.sh and bench-continue-baseline.sh); sourced, not run. Each service
# lives in a directory with its pid file.

# free_port: a TCP port free on loopback now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# svc_running PIDFILE: the process in PIDFILE is alive.
svc_running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# svc_control NAME PIDFILE COMMAND [STOP_SIGNAL]: carries out `status` and
# `stop` (and exits); returns 0 for `start`, 2 for anything else.
# `stop` sends STOP_SIGNAL (default TERM), waits up to 10 s, then KILLs.
svc_control() {
  local name=$1 pidfile=$2 cmd=$3 signal=${4:-TERM} pid
  case $cmd in
    status)
      if svc_running "$pidfile"; then echo "$name running (pid $(cat "$pidfile"))"; exit 0; fi
      echo "$name not running"; exit 1 ;;
    stop)
      if svc_running "$pidfile"; then
        pid=$(cat "$pidfile")
        kill "-$signal" "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
        echo "$name stopped"
      fi
      rm -f "$pidfile"; exit 0 ;;
    start) return 0 ;;
    *) return 2 ;;
  esac
}

# svc_wait_http NAME URL PIDFILE LOG SECONDS: waits until URL answers
# (polling every 0.2 s), giving up early once PIDFILE names a dead process
# (uWSGI writes its own pid file a moment after it starts); on failure
# prints the last lines of LOG and returns 1.
svc_wait_http() {
  local name=$1 url=$2 pidfile=$3 log=$4 seconds=$5
  for _ in $(seq $((seconds * 5))); do
    if curl -fsS "$url" >/dev/null 2>&1; then return 0; fi
    if [ -f "$pidfile" ] && ! svc_running "$pidfile"; then break; fi
    sleep 0.2
  done
  echo "$name failed to start; last log lines:" >&2
  tail -n 30 "$log" >&2
  return 1
}
