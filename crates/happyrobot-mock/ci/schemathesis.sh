#!/usr/bin/env bash
# Checks happyrobot-mock against openapi/happyrobot.yaml with Schemathesis, a property-based API
# tester nobody here wrote: it generates valid and invalid requests from the spec and checks every
# answer (status codes, content types, response schemas, auth enforcement, 405s with Allow, ...).
#
# Every operation of the spec is tested: GET /calls, GET /calls/{id}, GET /calls/{id}/transcript,
# POST /calls/{id}/notes, and
# PATCH and DELETE /calls/{id}/notes/{noteId}. GET /calls declares every query parameter a plain
# string, as HappyRobot documents them, so every value Schemathesis generates is valid: the mock
# answers 200 to all of them (it ignores values it cannot read, such as `limit=abc`), which is what
# the positive and negative data checks hold it to; only a parameter repeated in one query (which
# the spec's single string cannot express) is refused with the declared 4XX. PATCH and DELETE reach existing notes two ways: the spec's
# `noteId` example is a note the mock seeds on the call of the `id` example, and Schemathesis's
# stateful phase feeds note ids from earlier answers into later requests. Other note ids get the
# mock's documented 404. After the run, the HAR record of every exchange is read to make sure each
# operation was answered 200 at least once, so that a change that leaves an operation reachable
# only through its errors fails here instead of passing quietly.
#
# Run from anywhere; it works from the workspace root. Exits with Schemathesis's status.
# Needs python3 (3.9+) with venv and pip reaching PyPI, and cargo; .ci/python-venv.sh makes the venv.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
# Bounds the run (about 10 s of testing) and makes it repeatable.
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-200}"
SEED="${SCHEMATHESIS_SEED:-1}"
API_KEY="hr_schemathesis_key"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
# The spec to test against; another path can be given to try a spec change before making it.
SPEC="${SCHEMATHESIS_SPEC:-$ROOT/openapi/happyrobot.yaml}"
case "$SPEC" in /*) ;; *) SPEC="$ROOT/$SPEC" ;; esac
VENV="$TARGET_DIR/schemathesis-venv"
WORK="$TARGET_DIR/schemathesis-run"

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "version $SCHEMATHESIS_VERSION"; then
    echo "schemathesis.sh: installing schemathesis==$SCHEMATHESIS_VERSION into $VENV" >&2
    bash "$ROOT/.ci/python-venv.sh" "$VENV" "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet -p happyrobot-mock --bin happyrobot-mock
MOCK="$TARGET_DIR/debug/happyrobot-mock"

# Schemathesis and Hypothesis write state into the current directory; keep it out of the work tree.
rm -rf "$WORK"
mkdir -p "$WORK"
"$MOCK" --port 0 --api-key "$API_KEY" >"$WORK/mock.out" 2>"$WORK/mock.err" &
MOCK_PID=$!
cleanup() {
    kill "$MOCK_PID" 2>/dev/null || true
    wait "$MOCK_PID" 2>/dev/null || true
}
trap cleanup EXIT

BASE_URL=""
for _ in $(seq 1 300); do
    BASE_URL="$(sed -n 's/^base_url=//p' "$WORK/mock.out")"
    [ -n "$BASE_URL" ] && break
    if ! kill -0 "$MOCK_PID" 2>/dev/null; then
        echo "schemathesis.sh: happyrobot-mock exited early:" >&2
        cat "$WORK/mock.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$BASE_URL" ]; then
    echo "schemathesis.sh: happyrobot-mock printed no base_url= line within 30 s" >&2
    exit 1
fi
echo "schemathesis.sh: testing $BASE_URL with schemathesis $SCHEMATHESIS_VERSION (seed $SEED, up to $MAX_EXAMPLES examples)" >&2

# The header is spelled `Authorization`: Schemathesis's ignored_auth check removes the security
# scheme's header by that exact name before probing without credentials, so a lowercase
# `authorization` would survive the removal and the probe would wrongly look accepted.
# HTTP header names are case-insensitive, so the mock sees the same header either way.
set +e
(
    cd "$WORK"
    "$VENV/bin/schemathesis" run "$SPEC" \
        --url "$BASE_URL" \
        -H "Authorization: Bearer $API_KEY" \
        --seed "$SEED" \
        --max-examples "$MAX_EXAMPLES" \
        --generation-database none \
        --no-color \
        --report har \
        --report-har-path "$WORK/exchanges.har"
)
STATUS=$?
set -e
if [ "$STATUS" -ne 0 ]; then
    exit "$STATUS"
fi

# Each operation must have been answered 200 at least once; the table shows what each got.
"$VENV/bin/python" - "$WORK/exchanges.har" <<'PY'
import collections, json, re, sys
from urllib.parse import urlsplit

OPERATIONS = {
    ("GET", "calls"): "GET /calls",
    ("GET", "call"): "GET /calls/{id}",
    ("GET", "transcript"): "GET /calls/{id}/transcript",
    ("POST", "notes"): "POST /calls/{id}/notes",
    ("PATCH", "note"): "PATCH /calls/{id}/notes/{noteId}",
    ("DELETE", "note"): "DELETE /calls/{id}/notes/{noteId}",
}

def kind(path):
    rest = path.split("/api/v1", 1)[-1]
    if rest == "/calls":
        return "calls"
    if re.fullmatch(r"/calls/[^/]+", rest):
        return "call"
    if re.fullmatch(r"/calls/[^/]*/transcript", rest):
        return "transcript"
    if re.fullmatch(r"/calls/[^/]*/notes", rest):
        return "notes"
    if re.fullmatch(r"/calls/[^/]*/notes/[^/]+", rest):
        return "note"
    return "other"

with open(sys.argv[1], encoding="utf-8") as har:
    entries = json.load(har)["log"]["entries"]
statuses = collections.defaultdict(collections.Counter)
for entry in entries:
    key = (entry["request"]["method"], kind(urlsplit(entry["request"]["url"]).path))
    if key in OPERATIONS:
        statuses[key][entry["response"]["status"]] += 1
missing = []
for key, name in OPERATIONS.items():
    seen = ", ".join(f"{code} x{n}" for code, n in sorted(statuses[key].items())) or "nothing"
    print(f"schemathesis.sh: {name}: {seen}", file=sys.stderr)
    if statuses[key][200] == 0:
        missing.append(name)
if missing:
    print("schemathesis.sh: never answered 200, so not really tested: " + "; ".join(missing),
          file=sys.stderr)
    sys.exit(1)
PY
