#!/usr/bin/env bash
# Get an access token from tokenadmin in a pipeline step (bash, curl, python3, sha256sum).
#
#   export TOKENADMIN_URL=https://tokenadmin.example.com   # tokenadmin's SITE_URL
#   export TOKENADMIN_API_KEY=...                          # from `manage.py apikey create`
#   token=$(examples/pipeline-token.sh warehouse) || exit
#   # The provider answered 401 to a token tokenadmin still believed valid: report it by its
#   # SHA-256 (the token itself is never sent) and get the one to use now.
#   token=$(printf '%s' "$token" | examples/pipeline-token.sh --rejected warehouse) || exit
#
# Usage: pipeline-token.sh [--min-ttl SECONDS] [--rejected] SLUG
#   --min-ttl S  the token must stay valid at least S seconds (0 to 86400); refreshed if not
#   --rejected   read the rejected token from stdin; tokenadmin refreshes once if it is still
#                the current one, else hands back the token that already replaced it
#
# The token goes to stdout, nothing else does; messages go to stderr. The API key is read from
# the environment and handed to curl on stdin, so neither it nor a token is ever a command-line
# argument (visible in `ps`) or printed.
#
# Exit codes (the same as `manage.py connection token`):
#   0  the token is on stdout
#   1  error: API key refused (401) or not allowed this connection (403), no answer, or an
#      answer that is not tokenadmin's
#   2  malformed command line or environment, or no connection with that slug (404)
#   3  a person must act (409: never authorized, needs reauthorization, disabled); stderr says
#      what to do and links the connection's dashboard page
#   4  the provider is unavailable (503); retry after the seconds stderr names

set -euo pipefail

PROG=${0##*/}
EXIT_ERROR=1
EXIT_USAGE=2
EXIT_NEEDS_PERSON=3
EXIT_PROVIDER_DOWN=4

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() {
    say "$*"
    say "usage: $PROG [--min-ttl SECONDS] [--rejected] SLUG (with TOKENADMIN_URL and TOKENADMIN_API_KEY set)"
    exit "$EXIT_USAGE"
}

# The value of one top-level field of the JSON document on stdin ("" when absent or not JSON).
# The document arrives on stdin, never as an argument: it may hold a token.
json_field() {
    python3 -c '
import json, sys
try:
    value = json.load(sys.stdin).get(sys.argv[1])
except (ValueError, AttributeError):
    value = None
print("" if value is None else value)
' "$1"
}

sha256_of_stdin() {
    if command -v sha256sum >/dev/null; then
        sha256sum | cut -d' ' -f1
    else
        shasum -a 256 | cut -d' ' -f1 # macOS
    fi
}

min_ttl="" rejected=0 slug=""
while [ $# -gt 0 ]; do
    case $1 in
        --min-ttl) [ $# -ge 2 ] || usage "--min-ttl needs a number of seconds"; min_ttl=$2; shift 2 ;;
        --min-ttl=*) min_ttl=${1#*=}; shift ;;
        --rejected) rejected=1; shift ;;
        -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        -*) usage "unknown option $1" ;;
        *) [ -z "$slug" ] || usage "one SLUG only"; slug=$1; shift ;;
    esac
done
[ -n "$slug" ] || usage "name the connection's SLUG"
[[ $slug =~ ^[A-Za-z0-9_-]+$ ]] || usage "not a slug: $slug"
[ -z "$min_ttl" ] || [[ $min_ttl =~ ^[0-9]+$ ]] || usage "--min-ttl takes whole seconds"
[ "$rejected" = 0 ] || [ -z "$min_ttl" ] || usage "--min-ttl does not go with --rejected"
[ -n "${TOKENADMIN_URL:-}" ] || usage "set TOKENADMIN_URL to tokenadmin's SITE_URL"
[ -n "${TOKENADMIN_API_KEY:-}" ] || usage "set TOKENADMIN_API_KEY (manage.py apikey create)"
command -v curl >/dev/null || usage "needs curl"
command -v python3 >/dev/null || usage "needs python3 (to read JSON)"

base=${TOKENADMIN_URL%/}/api/v1/connections/$slug/token
if [ "$rejected" = 1 ]; then
    [ ! -t 0 ] || usage "--rejected reads the token from stdin: printf '%s' \"\$TOKEN\" | $PROG --rejected $slug"
    rejected_token=$(cat)
    rejected_token=${rejected_token#"${rejected_token%%[![:space:]]*}"} # trim leading space
    rejected_token=${rejected_token%"${rejected_token##*[![:space:]]}"} # and trailing
    [[ -n $rejected_token && ! $rejected_token =~ [[:space:]] ]] ||
        usage "--rejected needs exactly one token on stdin"
    token_sha256=$(printf '%s' "$rejected_token" | sha256_of_stdin)
    unset rejected_token
    request=(--request POST --header 'Content-Type: application/json'
        --data-binary "{\"token_sha256\": \"$token_sha256\"}" "$base/rejected")
elif [ -n "$min_ttl" ]; then
    request=("$base?min_ttl=$min_ttl")
else
    request=("$base")
fi

headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
# `--header @-`: the Authorization header is read from stdin, so the key is not in argv.
# A refresh may wait for the provider (tokenadmin's own timeouts are shorter than 60 s).
status=0
answer=$(printf 'Authorization: Bearer %s\n' "$TOKENADMIN_API_KEY" |
    curl --silent --show-error --max-time 60 --header @- --dump-header "$headers" \
        --write-out '\n%{http_code}' "${request[@]}") || status=$?
if [ "$status" != 0 ]; then
    say "no answer from ${TOKENADMIN_URL%/} (curl exit $status)"
    exit "$EXIT_ERROR"
fi
http_code=${answer##*$'\n'}
body=${answer%$'\n'*}
unset answer

field() { printf '%s' "$body" | json_field "$1"; }

case $http_code in
    200)
        token=$(field access_token)
        if [ -z "$token" ]; then
            say "HTTP 200 without an access_token from $base: is TOKENADMIN_URL tokenadmin?"
            exit "$EXIT_ERROR"
        fi
        served_by=$(field served_by)
        if [ -n "$served_by" ] && [ "$served_by" != "$slug" ]; then
            say "$slug cannot serve; serving its backup $served_by ($(field status))"
        fi
        if [ "$rejected" = 1 ] && [ "$(field refreshed)" = False ]; then
            say "that token was already replaced; this is the current one"
        fi
        printf '%s\n' "$token"
        exit 0
        ;;
    409)
        say "$slug: a person must act [$(field error)]: $(field message)"
        say "next step: $(field next_step)"
        deadline=$(field reauthorize_by)
        [ -z "$deadline" ] || say "reauthorize by: $deadline ($(field reauthorize_by_source))"
        say "dashboard: $(field dashboard_url)"
        exit "$EXIT_NEEDS_PERSON"
        ;;
    503)
        retry_after=$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$headers")
        say "$slug: provider unavailable [$(field error)]: $(field message); retry in ${retry_after:-30} s"
        exit "$EXIT_PROVIDER_DOWN"
        ;;
esac

message=$(field message)
if [ -z "$message" ]; then
    say "unexpected HTTP $http_code from $base: is TOKENADMIN_URL tokenadmin?"
    exit "$EXIT_ERROR"
fi
say "HTTP $http_code [$(field error)]: $message"
case $http_code in
    400 | 404) exit "$EXIT_USAGE" ;;
    *) exit "$EXIT_ERROR" ;;
esac
