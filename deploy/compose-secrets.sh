#!/bin/sh
# shellcheck shell=sh
# The compose project's own secrets, made once on its first `docker-compose up` and kept in
# the katy-secrets volume (/run/katy), so no two installations share one and none is a
# placeholder from the repository. docker-compose.yml runs this as the one-shot `secrets`
# service, as root, before everything else; the files go to the image's user (10001), except
# Redis's own include file, which the redis image's user must read.
#
#   app-secret, verify-token,      the emulator signs webhooks and accepts Send API calls with
#   page-token                     them, ingress and the sender use them (a real page's
#                                  KATY_APP_SECRET, KATY_VERIFY_TOKEN and KATY_PAGE_TOKEN in the
#                                  env file take precedence: a variable beats its _FILE)
#   control-token, outbound-token  katy.v1.Control (katyctl) and katy.v1.Outbound
#   redis-password                 Redis's requirepass; redis-url and redis-auth.conf carry it
set -eu
dir=/run/katy
umask 077

# 32 random bytes as 64 hex digits.
random_hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

for name in app-secret verify-token page-token control-token outbound-token redis-password; do
  if [ ! -s "$dir/$name" ]; then
    random_hex >"$dir/$name.new"
    mv "$dir/$name.new" "$dir/$name"
  fi
done
password=$(cat "$dir/redis-password")
printf 'redis://:%s@redis:6379/0' "$password" >"$dir/redis-url"
printf 'requirepass %s\n' "$password" >"$dir/redis-auth.conf"
for name in app-secret verify-token page-token control-token outbound-token redis-password redis-url; do
  chown 10001 "$dir/$name"
  chmod 0400 "$dir/$name"
done
chmod 0444 "$dir/redis-auth.conf"
echo "katy secrets ready in $dir"
