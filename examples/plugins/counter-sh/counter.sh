#!/bin/sh
# One tick: read the request line from stdin, answer one line on stdout.
# The cursor is the tick count in decimal, base64url-encoded without padding.
set -eu
read -r request
cursor=$(printf '%s' "$request" | sed -n 's/.*"cursor":"\([A-Za-z0-9_-]*\)".*/\1/p')
count=0
if [ -n "$cursor" ]; then
  padded=$(printf '%s' "$cursor" | tr '_-' '/+')
  case $(( ${#padded} % 4 )) in 2) padded="$padded==";; 3) padded="$padded=";; esac
  count=$(printf '%s' "$padded" | base64 -d)
fi
count=$((count + 1))
next=$(printf '%s' "$count" | base64 | tr '+/' '-_' | tr -d '=\n')
job=$(printf '%s' "$request" | sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')
echo "tick $count for $job" >&2
printf '{"result":{"next_cursor":"%s","metrics":{"items_seen":1,"items_dispatched":0},"items":[{"id":"%s-%s","count":%s}]}}\n' \
  "$next" "$job" "$count" "$count"
