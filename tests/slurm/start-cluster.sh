#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm*.py and for trying aetrain's
# `hydra/launcher=slurm` by hand: Debian's slurm-wlm and munge, a slurm.conf that names this host
# with its real CPUs and memory, a partition `debug`, no accounting (as many small clusters run).
# The partition lets up to 4 jobs share a core (OverSubscribe=FORCE:4): the tests' sweeps run side
# by side on a 2-core CI machine instead of queueing behind one another; a job still cannot ask
# for more CPUs or memory than the node has.
#
#   tests/slurm/start-cluster.sh          # as root, or through sudo; again: nothing to do
#   tests/slurm/start-cluster.sh --stop   # stop the three daemons (the queue's state is kept)
#
# Idempotent: what is installed is not installed again, a slurm.conf that already says the same is
# left alone (and the daemons running), and it waits until `sinfo` shows the node idle.
# Works without systemd (containers, CI): it starts munged, slurmctld and slurmd itself.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    exec sudo --preserve-env=PATH "$0" "$@"
fi

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
SPOOL_CTLD=/var/spool/slurmctld
SPOOL_D=/var/spool/slurmd
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
NODE=$(hostname -s)
WAIT_S=${SLURM_START_WAIT_S:-60}

say() { echo "start-cluster: $*"; }
fail() { echo "start-cluster: $*" >&2; exit 1; }

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_daemon() {  # the pid file's process, and wait for it to end
    local pidfile=$1
    if running "$pidfile"; then
        local pid
        pid=$(cat "$pidfile")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
}

if [ "${1:-}" = "--stop" ]; then
    stop_daemon "$SLURMD_PID"
    stop_daemon "$CTLD_PID"
    stop_daemon /run/munge/munged.pid
    say "stopped"
    exit 0
fi

# --- packages ------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
        || ! command -v sbatch >/dev/null; then
    say "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# --- munge: a key, and its daemon -------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    say "creating the munge key"
    if command -v mungekey >/dev/null; then
        mungekey --create --force --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || fail "munged does not answer (see /var/log/munge/munged.log)"
fi

# --- slurm.conf: this host, its real CPUs and memory ----------------------------------------------
# slurmd -C prints this node's line: NodeName=... CPUs=... RealMemory=...; keep the hardware fields.
hardware=$(slurmd -C | head -1 | tr ' ' '\n' \
    | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')
[ -n "$hardware" ] || fail "slurmd -C printed no CPUs or memory for this node"
wanted=$(mktemp)
trap 'rm -f "$wanted"' EXIT
cat >"$wanted" <<EOF
# Written by aetrain's tests/slurm/start-cluster.sh: a one-node cluster on $NODE.
ClusterName=aetrain
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$SPOOL_CTLD
SlurmdSpoolDir=$SPOOL_D
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ReturnToService=2
KillWait=10
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 ${hardware}State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
mkdir -p "$CONF_DIR" "$SPOOL_CTLD" "$SPOOL_D" "$LOG_DIR"
if ! cmp -s "$wanted" "$CONF"; then
    say "writing $CONF ($NODE: ${hardware% })"
    install -m 0644 "$wanted" "$CONF"
    stop_daemon "$SLURMD_PID"  # they read slurm.conf when they start
    stop_daemon "$CTLD_PID"
fi

# --- the daemons -----------------------------------------------------------------------------------
if ! running "$CTLD_PID"; then
    say "starting slurmctld"
    slurmctld
fi
if ! running "$SLURMD_PID"; then
    say "starting slurmd"
    slurmd
fi

# --- wait for the node ------------------------------------------------------------------------------
state=""
for _ in $(seq $((WAIT_S * 5))); do
    state=$(sinfo --noheader --nodes="$NODE" --format=%T 2>/dev/null | head -1 || true)
    case "$state" in
        idle | mixed | allocated | completing | planned) break ;;
        down* | drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.2
done
case "$state" in
    idle | mixed | allocated | completing | planned) say "node $NODE is $state in partition debug ($(sinfo --version))" ;;
    *) fail "node $NODE is '${state:-unknown}' after ${WAIT_S} s; see $LOG_DIR/slurmctld.log and slurmd.log" ;;
esac
