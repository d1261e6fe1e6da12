#!/usr/bin/env bash
# A two-node SLURM cluster on this machine: the place harness's SLURM hosts are tested
# against. One slurmctld and two slurmd (nodes n1 and n2, two CPUs each: two jobs at once
# on each) on loopback, with munge for authentication and accounting off (`scontrol show
# job` gives a job's end state). Installs Debian's slurm-wlm and munge when missing (root
# only).
#
#   scripts/slurm.sh start   install what is missing, start what is not running, wait
#                            until both nodes take jobs; prints the nodes (n1,n2)
#   scripts/slurm.sh stop    stop the daemons this script started (the config stays)
#
# Idempotent: a cluster already running from this script is reused as it is (restarted
# when this script's config changed). Its config
# is /etc/slurm/slurm.conf, which the client commands (sbatch, scontrol) read; one that
# this script did not write is never replaced.
set -euo pipefail
action="${1:-}"
config=/etc/slurm/slurm.conf
marker="# Written by harness's scripts/slurm.sh"
nodes="n1,n2"
say() { echo "slurm: $*" >&2; }

ready() {
    # Both nodes known and taking jobs (idle, or running some: mix, alloc).
    local states
    states="$(sinfo -h -N -o '%N %t' 2>/dev/null | sort -u)" || return 1
    [ "$(grep -cE '^n[12] (idle|mix|alloc|comp)' <<<"$states")" = 2 ]
}

running() { pgrep -f "^$1" >/dev/null 2>&1; }

case "$action" in
start)
    if ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            say "not installed; install it as root (apt-get install slurm-wlm munge)"
            exit 2
        fi
        say "installing Debian's slurm-wlm and munge"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
    fi
    if [ -f "$config" ] && ! grep -qF "$marker" "$config"; then
        if ready; then
            say "a cluster of its own config is running; using it as it is"
            echo "$nodes"
            exit 0
        fi
        say "$config was not written by this script; leaving it alone"
        exit 2
    fi
    host="$(hostname -s)"
    wanted="$(cat <<CONF
$marker: a two-node cluster on one machine.
ClusterName=harness
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd-%n.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
# Jobs are picked up and their states settle within a second or two.
SchedulerParameters=sched_min_interval=100000
KillWait=5
NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=17001 CPUs=2 RealMemory=11000
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=17002 CPUs=2 RealMemory=11000
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
CONF
)"
    if [ -f "$config" ] && [ "$(cat "$config")" = "$wanted" ] && ready; then
        say "already running (nodes $nodes)"
        echo "$nodes"
        exit 0
    fi
    if [ "$(id -u)" != 0 ]; then
        say "starting the daemons needs root"
        exit 2
    fi
    mkdir -p /run/munge /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
    chown munge: /run/munge
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        [ -f /etc/munge/munge.key ] || { mungekey --create && chown munge: /etc/munge/munge.key; }
        say "starting munged"
        su -s /bin/sh munge -c /usr/sbin/munged
    fi
    if [ -f "$config" ] && [ "$(cat "$config")" != "$wanted" ]; then
        say "the config changed: restarting the daemons"
        "$0" stop
        for _ in $(seq 30); do
            running /usr/sbin/slurm || break
            sleep 1
        done
    fi
    printf '%s\n' "$wanted" >"$config"
    if ! running /usr/sbin/slurmctld; then
        say "starting slurmctld"
        /usr/sbin/slurmctld
    fi
    for node in n1 n2; do
        if ! running "/usr/sbin/slurmd -N $node"; then
            say "starting slurmd for node $node"
            /usr/sbin/slurmd -N "$node"
        fi
    done
    for _ in $(seq 60); do
        if ready; then
            say "ready: nodes $nodes in partition debug (config $config)"
            echo "$nodes"
            exit 0
        fi
        # Nodes a previous cluster left down come back once their slurmd answers.
        scontrol update nodename="$nodes" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    say "the nodes did not come up within 60 s; read /var/log/slurm/"
    sinfo -N >&2 || true
    exit 2
    ;;
stop)
    for pidfile in /run/slurm/slurmd-n1.pid /run/slurm/slurmd-n2.pid /run/slurm/slurmctld.pid; do
        if [ -f "$pidfile" ]; then
            pid="$(cat "$pidfile")"
            say "stopping $(basename "$pidfile" .pid) ($pid)"
            kill "$pid" 2>/dev/null || true
        fi
    done
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
