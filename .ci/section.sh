# Sourced by .ci/run and the scripts it calls: `section NAME` prints "== NAME", after a line
# with the seconds the previous section took; `section_table` ends the last section and prints
# every section's seconds (also from an EXIT trap, so a failed run shows where its time went).
# The prefix (SECTION_PREFIX, e.g. "cross: ") tells the scripts' sections from CI's own.
SECTION_NAME=""
SECTION_START=$SECONDS
SECTION_TIMES=()
section() {
    local now=$SECONDS
    if [ -n "$SECTION_NAME" ]; then
        local took=$((now - SECTION_START))
        SECTION_TIMES+=("$(printf '%6d s  %s' "$took" "$SECTION_NAME")")
        echo "   ($took s: ${SECTION_PREFIX:-}$SECTION_NAME)"
    fi
    SECTION_NAME="$1"
    SECTION_START=$now
    if [ -n "$1" ]; then
        echo "== ${SECTION_PREFIX:-}$1"
    fi
}
section_table() {
    section ""
    echo "== ${SECTION_PREFIX:-}seconds per section (${SECONDS} s in all)"
    local line
    for line in "${SECTION_TIMES[@]}"; do
        echo "$line"
    done
}
