#!/usr/bin/env bash
# A single-node SLURM 22.05 cluster on this machine (Debian 12 packages, no systemd), for testing
# `snakemake --profile profiles/slurm`. Run as root (or via sudo).
#
#   bash tests/cluster/slurm-local.sh up       # install (if needed) and start; idempotent
#   bash tests/cluster/slurm-local.sh status   # which daemons run, sinfo
#   bash tests/cluster/slurm-local.sh down     # stop every daemon this script started, by its pid
#
# What it starts: munged, mariadbd (bound to 127.0.0.1), slurmdbd (so `sacct` works: the Snakemake
# SLURM executor queries sacct by default and hangs silently without accounting), slurmctld and
# slurmd, one node `localhost` in partition `debug`, account `local` with the current user in it.
# Settings for Snakemake: slurm_account=local slurm_partition=debug. A second partition `gpu` holds
# one 8-GPU node that is declared but never up: GPU jobs submitted there are accepted and stay
# pending (for reading a request back with `scontrol show job`), nothing ever runs there.
#
# Environment:
#   SLURM_LOCAL_STATE  directory for the pid list and the logs (default /var/tmp/srcr-slurm-local)
#   SLURM_LOCAL_NO_APT=1  do not apt-get (packages already installed)
#   SLURM_LOCAL_CPUS / SLURM_LOCAL_MEM_MB  override the node's CPUs / RealMemory
# Design notes, traps and timings: docs/cluster.md.
set -euo pipefail

STATE=${SLURM_LOCAL_STATE:-/var/tmp/srcr-slurm-local}
PIDS=$STATE/pids          # one "name pidfile" per line, for the daemons *this script* started
LOGS=$STATE/log
CLUSTER=localcluster
ACCOUNT=local
PARTITION=debug
GPU_PARTITION=gpu
PKGS="munge slurmctld slurmd slurm-client slurmdbd slurm-wlm-basic-plugins slurm-wlm-mysql-plugin mariadb-server"

T0=$(date +%s.%N)
step() { awk -v a="$(date +%s.%N)" -v b="$T0" -v m="$*" 'BEGIN{printf "[slurm-local %6.1fs] %s\n", a-b, m}'; }
die() { echo "slurm-local: ERROR: $*" >&2; exit 1; }

# wait_for SECONDS CMD...: poll CMD every 0.25 s until it succeeds
wait_for() { local n=$(( $1 * 4 )); shift; for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done; return 1; }

alive() { [ -n "${1:-}" ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
pid_of() { [ -s "$1" ] && cat "$1" 2>/dev/null || true; }
running() { alive "$(pid_of "$1")"; }
# record NAME PIDFILE: remember "NAME PIDFILE PID" of a daemon this script started
record() { sed -i "/^$1 /d" "$PIDS"; echo "$1 $2 $(pid_of "$2")" >> "$PIDS"; }

install_packages() {
  local missing=""
  for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"; done
  if [ -z "$missing" ]; then step "packages already installed"; return; fi
  [ "${SLURM_LOCAL_NO_APT:-0}" = 1 ] && die "missing packages:$missing (SLURM_LOCAL_NO_APT=1)"
  step "apt-get install$missing"
  apt-get update -qq
  # policy-rc.d: keep the packages' init scripts from starting daemons during install
  local prc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; prc=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>"$LOGS/apt.err" \
    || { cat "$LOGS/apt.err" >&2; die "apt-get install failed"; }
  [ "$prc" = 1 ] && rm -f /usr/sbin/policy-rc.d
  step "packages installed"
}

start_munge() {
  if running /run/munge/munged.pid; then step "munged already running"; return; fi
  [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 sh -c 'munge -n | unmunge' || die "munge does not work"
  record munged /run/munge/munged.pid
  step "munged up"
}

start_mariadb() {
  if running /run/mysqld/mysqld.pid && mariadb-admin ping >/dev/null 2>&1; then step "mariadbd already running"; else
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    rm -f /run/mysqld/mysqld.pid
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
      >"$LOGS/mariadb.log" 2>&1 < /dev/null &
    wait_for 60 mariadb-admin ping || die "mariadbd did not start (see $LOGS/mariadb.log)"
    wait_for 10 test -s /run/mysqld/mysqld.pid
    record mariadbd /run/mysqld/mysqld.pid
    step "mariadbd up"
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
}

start_slurmdbd() {
  mkdir -p /var/log/slurm && chown slurm:slurm /var/log/slurm
  if running /run/slurmdbd.pid; then step "slurmdbd already running"; return; fi
  cat > /etc/slurm/slurmdbd.conf <<'EOF'
# written by tests/cluster/slurm-local.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmdbpass
StorageLoc=slurm_acct_db
EOF
  chown slurm:slurm /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf
  rm -f /run/slurmdbd.pid
  /usr/sbin/slurmdbd
  wait_for 30 bash -c 'echo > /dev/tcp/127.0.0.1/6819' || die "slurmdbd does not listen (see /var/log/slurm/slurmdbd.log)"
  wait_for 10 test -s /run/slurmdbd.pid
  record slurmdbd /run/slurmdbd.pid
  step "slurmdbd up"
}

write_slurm_conf() {
  local ncpu mem
  ncpu=${SLURM_LOCAL_CPUS:-$(nproc)}
  mem=${SLURM_LOCAL_MEM_MB:-$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) - 1024 ))}
  mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  chown slurm:slurm /var/spool/slurmctld /var/log/slurm
  cat > /etc/slurm/slurm.conf <<EOF
# written by tests/cluster/slurm-local.sh: one node, one partition, accounting through slurmdbd
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
GresTypes=gpu
JobAcctGatherType=jobacct_gather/linux
# store sbatch --comment (the plugin writes rule_<rule>_wildcards_<...> there) so sacct shows it
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
# a requeued job may run again (the default, stated); keep finished jobs visible to squeue for 5 min
JobRequeue=1
MinJobAge=300
# SIGTERM, then KillWait seconds, then SIGKILL (the grace a preempted/cancelled job gets)
KillWait=30
# A GPU node that never comes up (no slurmd answers on its port) in a partition that is DOWN:
# GPU jobs are accepted into partition '$GPU_PARTITION' and stay pending (Reason=PartitionDown), so
# a test can read a paper-scale request back with scontrol; nothing can ever run there.
# It must come before 'localhost': SLURM 22.05 resolves any name to the only node while that node
# is called localhost, and then stops with "Duplicated NodeHostName gpunode".
NodeName=gpunode NodeAddr=127.0.0.2 Port=6899 CPUs=64 RealMemory=1000000 Gres=gpu:8 State=DOWN Reason=placeholder
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=$GPU_PARTITION Nodes=gpunode MaxTime=7-00:00:00 State=DOWN
EOF
}

start_slurm() {
  if running /run/slurmctld.pid; then step "slurmctld already running"; else
    write_slurm_conf
    rm -f /run/slurmctld.pid
    /usr/sbin/slurmctld
    wait_for 30 test -s /run/slurmctld.pid || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
    record slurmctld /run/slurmctld.pid
    step "slurmctld up"
  fi
  if running /run/slurmd.pid; then step "slurmd already running"; else
    rm -f /run/slurmd.pid
    /usr/sbin/slurmd -N localhost
    wait_for 30 test -s /run/slurmd.pid || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
    record slurmd /run/slurmd.pid
    step "slurmd up"
  fi
  if ! wait_for 60 sh -c "sinfo -h -p $PARTITION -o '%T' | grep -Eq '^(idle|mixed|allocated)'"; then
    sinfo || true
    die "node did not become idle (see /var/log/slurm/slurmd.log, slurmctld.log)"
  fi
  step "node up: $(sinfo -h -o '%P %a %D %T %N' | tr '\n' ' ')"
}

add_account() {
  local user; user=$(id -un)
  wait_for 30 sh -c "sacctmgr -n list cluster format=cluster%40 | grep -qw $CLUSTER" || die "slurmctld did not register $CLUSTER with slurmdbd"
  sacctmgr -n list account format=account%40 | grep -qw "$ACCOUNT" \
    || sacctmgr -i add account "$ACCOUNT" Description=local Organization=local >/dev/null
  sacctmgr -n list assoc user="$user" account="$ACCOUNT" format=user%40 | grep -qw "$user" \
    || sacctmgr -i add user "$user" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
  step "accounting: account '$ACCOUNT' with user '$user'"
}

up() {
  [ "$(id -u)" = 0 ] || die "run as root"
  mkdir -p "$STATE" "$LOGS"; touch "$PIDS"
  install_packages
  start_munge
  start_mariadb
  start_slurmdbd
  start_slurm
  add_account
  (cd "$STATE" && srun -N1 -A "$ACCOUNT" -p "$PARTITION" -t 1 hostname >/dev/null) || die "srun does not work"
  step "cluster up (srun ok); use slurm_account=$ACCOUNT slurm_partition=$PARTITION"
}

# stop NAME PIDFILE PID: SIGTERM the process PID (recorded at start) and wait until it is gone (or a zombie:
# PID 1 on some containers does not reap at once)
stop() {
  local name=$1 pf=$2 p=$3
  if alive "$p"; then
    kill "$p" 2>/dev/null || true
    wait_for 20 sh -c "! { [ -d /proc/$p ] && ! grep -q '^State:.*Z' /proc/$p/status; }" \
      || { echo "slurm-local: $name ($p) ignored SIGTERM, sending SIGKILL" >&2; kill -9 "$p" 2>/dev/null || true; }
    step "stopped $name (pid $p)"
  fi
  # the pid file only if it still names that process (a daemon started by someone else stays)
  [ "$(pid_of "$pf")" = "$p" ] && rm -f "$pf"
  return 0
}

down() {
  [ -s "$PIDS" ] || { step "nothing to stop (no $PIDS)"; return 0; }
  # reverse order of start
  for name in slurmd slurmctld slurmdbd mariadbd munged; do
    read -r pf pid < <(awk -v n="$name" '$1 == n {print $2, $3}' "$PIDS") || continue
    [ -n "$pid" ] && stop "$name" "$pf" "$pid"
  done
  rm -f "$PIDS"
  step "cluster down"
}

status() {
  local rc=0
  for pf in /run/munge/munged.pid /run/mysqld/mysqld.pid /run/slurmdbd.pid /run/slurmctld.pid /run/slurmd.pid; do
    if running "$pf"; then echo "running  $(basename "$pf" .pid) pid $(pid_of "$pf")"; else echo "stopped  $(basename "$pf" .pid)"; rc=1; fi
  done
  [ -s "$PIDS" ] && { echo "started by this script:"; sed 's/^/  /' "$PIDS"; }
  sinfo 2>/dev/null || true
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
