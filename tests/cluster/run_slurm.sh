#!/usr/bin/env bash
# Run the workflow on a REAL one-node SLURM cluster started here, through profiles/slurm.
#
#   sudo tests/cluster/run_slurm.sh [TARGET] [EXTRA SNAKEMAKE ARGS...]
#
# TARGET defaults to $TARGET or results/report.html; e.g. `tests/cluster/run_slurm.sh
# ingest_only`. Environment knobs:
#   CONFIGFILE   --configfile for the run (default config/test.yaml; empty: none)
#   KEEP_TMP=1   keep the temp folder (slurm.conf, daemon logs, Snakemake log) after success
#   SLURM_TEST_TIMEOUT  seconds before the Snakemake run is killed (default 1800)
#   INIT_SECONDS override the plugin's first/base status-poll interval (the profile says 10)
#   FAKE_GPUS=N  advertise N GPUs (gres/gpu without devices) on the node, to check that rules
#                with `resources: gpu=1` reach SLURM as --gpus=1 (their code sees no GPU)
#
# What it does: installs Debian's slurm-wlm and munge when missing (apt-get), writes a slurm.conf
# for this machine (from `slurmd -C`) into a temp folder, starts munged (unless one already
# answers), slurmctld and slurmd, waits for the node to be idle, runs
# `.venv/bin/snakemake --profile profiles/slurm --configfile $CONFIGFILE TARGET` in the
# repository root, and then checks that the jobs really went through SLURM: every SLURM job id
# that Snakemake logged must be known to slurmctld (allocated in its log and COMPLETED in
# `scontrol show job`), and there must be at least one. The daemons it started are stopped by
# their PIDs on exit. Exit code 0 only when the run and every check pass.
#
# Needs: root (the daemons), Debian/Ubuntu with apt, and the project venv .venv (made by
# `make venv` when missing and a Makefile exists) with snakemake-executor-plugin-slurm.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/tests/cluster"
TARGET="${1:-${TARGET:-results/report.html}}"
[[ $# -gt 0 ]] && shift
CONFIGFILE="${CONFIGFILE-config/test.yaml}"
TIMEOUT="${SLURM_TEST_TIMEOUT:-1800}"

log() { printf '[run_slurm %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: it starts munged, slurmctld and slurmd"
cd "$REPO"

# --- the venv ---------------------------------------------------------------------------------
if [[ ! -x .venv/bin/snakemake ]]; then
    [[ -f Makefile ]] || die ".venv/bin/snakemake missing and no Makefile to make it"
    log "no .venv: running 'make venv'"
    make venv
fi
.venv/bin/python -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || die ".venv lacks snakemake-executor-plugin-slurm"
[[ -z "$CONFIGFILE" || -f "$CONFIGFILE" ]] || die "config file $CONFIGFILE not found"

# --- SLURM and munge from Debian ----------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    log "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

TMP="$(mktemp -d /tmp/nfsynth-slurm.XXXXXX)"
chmod 755 "$TMP"
mkdir -p "$TMP"/{state,spool,run,log}
PIDS=()          # daemons started here, stopped in reverse order on exit
STATUS=1
POLLER=""
SMK_PID=""
ETC_CONF=""
ETC_LINKED=""

cleanup() {
    local rc=$?
    [[ -n "$POLLER" ]] && kill "$POLLER" 2>/dev/null || true
    [[ -n "$SMK_PID" ]] && kill "$SMK_PID" 2>/dev/null || true
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
    done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    if [[ -n "$ETC_LINKED" && "$(readlink "$ETC_CONF" 2>/dev/null)" == "$TMP/slurm.conf" ]]; then
        rm -f "$ETC_CONF"
    fi
    if [[ $STATUS -eq 0 && -z "${KEEP_TMP:-}" ]]; then
        rm -rf "$TMP"
    else
        log "kept $TMP (slurm.conf, log/slurmctld.log, log/slurmd.log, snakemake.log)"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- slurm.conf for this machine ----------------------------------------------------------------
HOST="$(hostname -s)"
HW="$(slurmd -C | head -n1)"
hw() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$HW"; }
read -r CTLD_PORT SLURMD_PORT < <(.venv/bin/python - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
sed -e "s|@HOST@|$HOST|g" -e "s|@DIR@|$TMP|g" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|" -e "s|@SLURMD_PORT@|$SLURMD_PORT|" \
    -e "s|@CPUS@|$(hw CPUs)|" -e "s|@BOARDS@|$(hw Boards)|" -e "s|@SOCKETS@|$(hw SocketsPerBoard)|" \
    -e "s|@CORES@|$(hw CoresPerSocket)|" -e "s|@THREADS@|$(hw ThreadsPerCore)|" \
    -e "s|@MEM@|$(hw RealMemory)|" \
    "$HERE/slurm.conf.template" >"$TMP/slurm.conf"
if [[ "${FAKE_GPUS:-0}" -gt 0 ]]; then
    sed -i -e "s|^\(NodeName=.*\) State=UNKNOWN|\1 Gres=gpu:$FAKE_GPUS State=UNKNOWN|" \
        -e "1a GresTypes=gpu" "$TMP/slurm.conf"
    for ((g = 0; g < FAKE_GPUS; g++)); do  # devices that exist but are no GPU
        echo "Name=gpu File=/dev/null" >>"$TMP/gres.conf"
    done
fi
# Clients, daemons and the SLURM jobs (sbatch --export=ALL) read this file through SLURM_CONF.
# But the job-side plugin (snakemake-executor-plugin-slurm-jobstep) removes every SLURM_* variable
# but the job id before its inner `srun`, so srun only finds the default /etc/slurm/slurm.conf:
# link it there for the run (only when no slurm.conf exists; removed on exit).
export SLURM_CONF="$TMP/slurm.conf"
ETC_CONF=/etc/slurm/slurm.conf
if [[ -e "$ETC_CONF" || -L "$ETC_CONF" ]]; then
    die "$ETC_CONF exists: refusing to replace the configuration of a real cluster"
fi
mkdir -p /etc/slurm
ln -s "$SLURM_CONF" "$ETC_CONF"
ETC_LINKED=1
log "slurm.conf: $HOST, $(hw CPUs) CPUs, $(hw RealMemory) MB, ports $CTLD_PORT/$SLURMD_PORT"

# --- munge -------------------------------------------------------------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running: using it"
else
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
    chmod 700 /etc/munge && chmod 600 /etc/munge/munge.key && chmod 755 /run/munge
    setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
        >"$TMP/log/munged.out" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.2
    done
    munge -n | unmunge >/dev/null || die "munged did not start (see $TMP/log/munged.out)"
    log "munged started (pid ${PIDS[-1]})"
fi

# --- slurmctld and slurmd ----------------------------------------------------------------------
slurmctld -D -i -f "$SLURM_CONF" >"$TMP/log/slurmctld.out" 2>&1 &
PIDS+=("$!")
slurmd -D -f "$SLURM_CONF" -N "$HOST" >"$TMP/log/slurmd.out" 2>&1 &
PIDS+=("$!")
state=""
for _ in $(seq 120); do
    state="$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)"
    [[ "$state" == "idle" ]] && break
    sleep 0.5
done
[[ "$state" == "idle" ]] || die "node not idle after 60 s (state '$state'); see $TMP/log"
log "cluster up: $(sinfo -h -o '%P %a %D %T %N' | tr '\n' ' ')"

# --- the workflow through SLURM ----------------------------------------------------------------
# The target goes first: --configfile takes several values and would swallow it.
ARGS=("$TARGET" --profile profiles/slurm)
[[ -n "${INIT_SECONDS:-}" ]] && ARGS+=(--slurm-init-seconds-before-status-checks "$INIT_SECONDS")
ARGS+=("$@")
[[ -n "$CONFIGFILE" ]] && ARGS+=(--configfile "$CONFIGFILE")
log "running: .venv/bin/snakemake ${ARGS[*]}"
# Record every job SLURM holds while the run goes on (a second, independent witness).
(while true; do squeue -h -o '%i %j %T' >>"$TMP/squeue.txt" 2>/dev/null || true; sleep 1; done) &
POLLER=$!
start=$(date +%s)
set +e
timeout --signal=INT --kill-after=60 "$TIMEOUT" \
    .venv/bin/snakemake "${ARGS[@]}" >"$TMP/snakemake.log" 2>&1 &
SMK_PID=$!
wait "$SMK_PID"
smk_rc=$?
set -e
SMK_PID=""
elapsed=$(($(date +%s) - start))
kill "$POLLER" 2>/dev/null || true
wait "$POLLER" 2>/dev/null || true
POLLER=""
tail -n 25 "$TMP/snakemake.log" >&2
[[ $smk_rc -eq 0 ]] || die "snakemake exited $smk_rc after ${elapsed}s (log: $TMP/snakemake.log)"

# --- did the jobs really run in SLURM? ---------------------------------------------------------
mapfile -t IDS < <(sed -n 's/.*has been submitted with SLURM jobid \([0-9][0-9]*\).*/\1/p' \
    "$TMP/snakemake.log" | sort -un)
[[ ${#IDS[@]} -gt 0 ]] || die "no 'submitted with SLURM jobid' line in the Snakemake log"
for id in "${IDS[@]}"; do
    # The main scheduler logs "sched: Allocate JobId=N ...", the backfill scheduler
    # "sched/backfill: _start_job: Started JobId=N in ..."; either one means it ran.
    grep -Eq "(Allocate|Started) JobId=$id( |$)" "$TMP/log/slurmctld.log" \
        || die "slurmctld never allocated job $id"
    jstate="$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' || true)"
    [[ "$jstate" == "COMPLETED" ]] || die "SLURM job $id is '${jstate:-unknown}', not COMPLETED"
    # What the profile and the rule's resources became in SLURM.
    { scontrol -o show job "$id" | tr ' ' '\n' \
        | grep -E '^(JobId|Partition|TimeLimit|NumCPUs|MinMemoryNode|TresPerJob)=' \
        | paste -sd ' ' >&2; } || true
done
seen="$(awk '{print $1}' "$TMP/squeue.txt" 2>/dev/null | sort -un | wc -l)"
log "OK: ${#IDS[@]} jobs ran through SLURM (ids ${IDS[*]}), all COMPLETED;" \
    "squeue saw $seen of them; snakemake took ${elapsed}s"
STATUS=0
