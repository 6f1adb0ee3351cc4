#!/usr/bin/env bash
# A real OpenStack Keystone (v3, Fernet tokens, SQLite) under uWSGI on
# 127.0.0.1, with the users the tests need.
#   scripts/keystone.sh start DIR [--port P]   # default port 5000
#   scripts/keystone.sh stop DIR
#   scripts/keystone.sh status DIR
# Everything it writes is in DIR; DIR/env (mode 0600) exports
# KEYSTONE_URL, the admin password, the daemon's service user
# (role admin on project "service") and a member-only user (role member
# on project "demo"). Facts it relies on: shared/spec/keystone.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${DISCOVERD_PYENV_DIR:-/opt/ironic-discoverd-dev}/keystone-venv

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2; shift 2
port=5000
while [ $# -gt 0 ]; do
  case $1 in
    --port) port=$2; shift 2 ;;
    *) usage ;;
  esac
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile=$dir/uwsgi.pid
# shellcheck source=lib/service.sh
. "$here/lib/service.sh"
running() { svc_running "$pidfile"; }
# SIGINT stops the uWSGI master; SIGTERM would make it reload.
svc_control keystone "$pidfile" "$cmd" INT || usage
if running; then echo "keystone already running"; exit 0; fi

"$here/pyenv.sh" keystone >/dev/null
start=$SECONDS
url=http://127.0.0.1:$port/v3
conf=$dir/keystone.conf
cat > "$conf" <<CONF
[DEFAULT]
log_file = $dir/keystone.log
[database]
connection = sqlite:///$dir/keystone.sqlite
[token]
provider = fernet
[fernet_tokens]
key_repository = $dir/fernet-keys
[fernet_receipts]
key_repository = $dir/fernet-receipts
[credential]
key_repository = $dir/credential-keys
CONF
rand() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
admin_pw=$(rand) service_pw=$(rand) member_pw=$(rand)
km() { "$venv/bin/keystone-manage" --config-file "$conf" "$@" >>"$dir/setup.log" 2>&1; }
km db_sync
km fernet_setup --keystone-user root --keystone-group root
km credential_setup --keystone-user root --keystone-group root
km bootstrap --bootstrap-password "$admin_pw" --bootstrap-admin-url "$url/" \
  --bootstrap-public-url "$url/" --bootstrap-region-id RegionOne

OS_KEYSTONE_CONFIG_FILES=$conf setsid "$venv/bin/uwsgi" --http-socket "127.0.0.1:$port" \
  --module keystone.wsgi.api:application --master --processes 1 --threads 2 \
  --virtualenv "$venv" --pidfile "$pidfile" >>"$dir/uwsgi.log" 2>&1 < /dev/null &
svc_wait_http keystone "$url" "$pidfile" "$dir/uwsgi.log" 60 || exit 1

token_for() { # user password project
  curl -fsS -D - -o /dev/null "$url/auth/tokens" -H 'Content-Type: application/json' -d "{\"auth\": {
    \"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"name\": \"$1\", \"domain\": {\"id\": \"default\"}, \"password\": \"$2\"}}},
    \"scope\": {\"project\": {\"name\": \"$3\", \"domain\": {\"id\": \"default\"}}}}}" \
    | awk 'tolower($1) == "x-subject-token:" {print $2}' | tr -d '\r'
}
admin=$(token_for admin "$admin_pw" admin)
api() { curl -fsS -X "$1" "$url$2" -H "X-Auth-Token: $admin" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
role_id() { api GET "/roles?name=$1" | jq -r '.roles[0].id'; }
make_user() { # user password project role
  local pid uid
  pid=$(api POST /projects "{\"project\": {\"name\": \"$3\", \"domain_id\": \"default\"}}" | jq -r .project.id)
  uid=$(api POST /users "{\"user\": {\"name\": \"$1\", \"password\": \"$2\", \"domain_id\": \"default\"}}" | jq -r .user.id)
  api PUT "/projects/$pid/users/$uid/roles/$(role_id "$4")" >/dev/null
}
make_user discoverd "$service_pw" service admin
make_user operator-member "$member_pw" demo member

umask 077
cat > "$dir/env" <<ENV
export KEYSTONE_URL=$url
export KEYSTONE_ADMIN_USER=admin KEYSTONE_ADMIN_PASSWORD=$admin_pw KEYSTONE_ADMIN_PROJECT=admin
export DISCOVERD_SERVICE_USER=discoverd DISCOVERD_SERVICE_PASSWORD=$service_pw DISCOVERD_SERVICE_PROJECT=service
export MEMBER_USER=operator-member MEMBER_PASSWORD=$member_pw MEMBER_PROJECT=demo
ENV
echo "keystone ready at $url in $((SECONDS - start))s"
