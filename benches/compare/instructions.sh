#!/usr/bin/env bash
# Instructions per record (appends, sequential read) or per lookup, for every backend of
# seglog-compare: `instr <backend> <workload> <n>` under callgrind, counting only the
# instructions of its `timed_part` (user space; setup, teardown and the kernel excluded).
# Read figures include the harness summing each value's bytes, the same for every backend.
#
#   benches/compare/instructions.sh            # N = 100k records, 100k lookups
#   INSTR_N=20000 benches/compare/instructions.sh
#   INSTR_BACKENDS="seglog raw" INSTR_WORKLOADS="append-batch seq-read" benches/compare/instructions.sh
#
# Env: INSTR_N (records per log, a multiple of 1000; default 100000); INSTR_LOOKUPS
# (random lookups per lookup workload; default N; callgrind runs seglog's ~300k-instruction
# lookups at about 300/s, so INSTR_LOOKUPS=10000 saves about 5 minutes); INSTR_SMALL_N
# (records of the compressed topics' single-record appends, marked * in the table; default
# N/10: each append compresses a one-record batch with a fresh codec context, whose set-up
# callgrind emulates slowly: zstd's had not finished after 11 minutes at 100k);
# INSTR_BACKENDS, INSTR_WORKLOADS (space-separated subsets).
# Not measured (printed as "-"): lookups on the compressed topics; kafko's reads, whose
# read_record_at zero-fills and reads the rest of a 1 MiB segment for every record (about
# 0.5 MiB of memset per record, which callgrind emulates for many minutes).
# Whole default run here (2 shared cores, load 3.4-4.6 from other builds): 698 s, plus the build.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${INSTR_N:-100000}
LOOKUPS=${INSTR_LOOKUPS:-$N}
SMALL_N=${INSTR_SMALL_N:-$(((N / 10 + 999) / 1000 * 1000))}
BACKENDS=${INSTR_BACKENDS:-"seglog seglog-lz4 seglog-zstd commitlog kafko raw"}
WORKLOADS=${INSTR_WORKLOADS:-"append-batch append-single seq-read lookup-batched lookup-single"}

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cargo build --quiet --release -p seglog-compare --bin instr
BIN="${CARGO_TARGET_DIR:-target}/release/instr"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

skipped() { # backend workload
  case "$1:$2" in
    seglog-lz4:lookup-* | seglog-zstd:lookup-* | kafko:seq-read | kafko:lookup-*) return 0 ;;
  esac
  return 1
}

# 1234567 -> 1,234,567
commas() { printf "%s" "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta'; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+dirty')"
started=$SECONDS
declare -A CELL
for w in $WORKLOADS; do
  for b in $BACKENDS; do
    if skipped "$b" "$w"; then CELL[$w:$b]="-"; continue; fi
    f="$OUT/$b-$w" n=$N mark=""
    case "$b:$w" in seglog-*:append-single) n=$SMALL_N mark="*" ;; esac
    valgrind --tool=callgrind --toggle-collect='*timed_part*' --callgrind-out-file="$f.cg" \
      "$BIN" "$b" "$w" "$n" "$LOOKUPS" >"$f.stdout" 2>"$f.stderr" ||
      { echo "instr $b $w failed:" >&2; tail -20 "$f.stderr" >&2; exit 1; }
    ir=$(awk '/^summary:/ {print $2}' "$f.cg")
    ops=$(awk '{print $NF}' "$f.stdout")
    CELL[$w:$b]=$(commas $(( (ir + ops / 2) / ops )))$mark
    echo "  $b $w: $ir instructions / $ops" >&2
  done
done

echo "Instructions per record (per lookup for lookup-*), 100 B values, N = $N records" \
  "($LOOKUPS lookups); commit $commit;" \
  "load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
  "$((SECONDS - started)) s. * = $SMALL_N records. - = not measured (see the script)."
echo
printf "| workload |"; for b in $BACKENDS; do printf " %s |" "$b"; done; echo
printf "|---|"; for b in $BACKENDS; do printf -- "---:|"; done; echo
for w in $WORKLOADS; do
  printf "| %s |" "$w"; for b in $BACKENDS; do printf " %s |" "${CELL[$w:$b]}"; done; echo
done
