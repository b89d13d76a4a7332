#!/usr/bin/env bash
# The project's local SLURM cluster: one node on localhost, for the integration tests and CI.
#
#   bash tests/slurm/cluster.sh start    # install if missing, configure, start; no-op if up
#   bash tests/slurm/cluster.sh stop     # stop the daemons this script started
#   bash tests/slurm/cluster.sh restart  # stop, then start (clean job state)
#   bash tests/slurm/cluster.sh status   # prints up/down; exit 0 when up, 1 when down
#
# Made for a Debian 12 machine run as root without systemd and without usable cgroups (a CI
# container): SLURM 22.05 from Debian, munge for authentication, MariaDB on 127.0.0.1 with
# slurmdbd so that `sacct` works (submitit polls it for job states; without it a cancelled
# job reads as UNKNOWN and `job.result()` can wait for ever), two fake GPUs as GRES.
#
# Settings (environment):
#   FROMSCRATCH_SLURM_RUN=/tmp/fromscratch-slurm   runtime: state, spool, logs, pid files, DB
#   FROMSCRATCH_SLURM_PARTITION=debug             the default partition
#   FROMSCRATCH_SLURM_GPUS=2                      fake GPUs on the node
set -euo pipefail

RUN="${FROMSCRATCH_SLURM_RUN:-/tmp/fromscratch-slurm}"
PARTITION="${FROMSCRATCH_SLURM_PARTITION:-debug}"
GPUS="${FROMSCRATCH_SLURM_GPUS:-2}"
CLUSTER=fromscratch
CONF=/etc/slurm # where Debian's SLURM looks for slurm.conf
DB_SOCKET="$RUN/mysqlrun/mysql.sock"
DB_PASS=fromscratch-local # MariaDB listens on 127.0.0.1 only
PACKAGES="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
# Each daemon's pid file and process name, in the order they are stopped.
DAEMONS=("$RUN/slurmd.pid:slurmd" "$RUN/slurmctld.pid:slurmctld" "$RUN/slurmdbd.pid:slurmdbd"
  "$RUN/mysqlrun/mysql.pid:mariadbd" "$RUN/munge/munged.pid:munged")

say() { echo "cluster.sh: $*"; }
die() {
  echo "cluster.sh: error: $*" >&2
  exit 1
}

# Poll `$@` every 0.2 s for up to $1 seconds; true as soon as it succeeds.
wait_for() {
  local seconds=$1
  shift
  for _ in $(seq 1 $((seconds * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

node_name() { hostname -s; }

# What the running cluster was made from: a changed script or setting restarts it.
fingerprint() { echo "$(sha256sum <"${BASH_SOURCE[0]}") $PARTITION $GPUS"; }

node_state() { sinfo -h -N -n "$(node_name)" -o %t 2>/dev/null; }

node_is_usable() {
  case "$(node_state)" in idle | mix | alloc) return 0 ;; *) return 1 ;; esac
}

# Every daemon this script starts is running (checked first: sinfo takes 10 s to give up).
daemons_alive() {
  for d in "${DAEMONS[@]}"; do
    [ -n "$(daemon_pid "$d")" ] || return 1
  done
}

# The pid of a daemon ("PIDFILE:NAME") if it runs; empty if not. The name is checked, since
# a pid file left by a killed machine may name a pid that another process has now.
daemon_pid() {
  local file="${1%%:*}" name="${1##*:}" pid
  [ -s "$file" ] || return 0
  pid="$(cat "$file")"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && echo "$pid"
  return 0
}

# Up means: the daemons run, the node takes jobs and accounting answers (submitit needs both).
is_up() {
  daemons_alive && command -v sinfo >/dev/null && node_is_usable &&
    sacct -n -X -S now >/dev/null 2>&1
}

install_missing() {
  local missing=""
  for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  say "installing$missing"
  apt-get update -qq
  # No systemd: the packages' "invoke-rc.d: ... denied" messages are expected.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing \
    >"${TMPDIR:-/tmp}/fromscratch-slurm-apt.log" 2>&1 ||
    die "apt-get install$missing failed: see ${TMPDIR:-/tmp}/fromscratch-slurm-apt.log"
}

# TERM every daemon at once, then wait for each (each takes 1-3 s to exit); KILL stragglers.
stop_daemons() {
  local pids=() pid
  for d in "${DAEMONS[@]}"; do
    pid="$(daemon_pid "$d")"
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "${d%%:*}"
  done
  for pid in "${pids[@]}"; do
    wait_for 20 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  done
}

# slurmctld -c starts job ids at FirstJobId, but slurmdbd remembers the jobs of earlier
# runs: a reused id would make `sacct -j ID` report an old job's state to submitit.
next_job_id() {
  local last
  last="$(mariadb --socket="$DB_SOCKET" -N -e \
    "SELECT COALESCE(MAX(id_job), 0) FROM slurm_acct_db.${CLUSTER}_job_table" 2>/dev/null)" ||
    last=0
  echo $((${last:-0} + 1))
}

write_slurm_conf() {
  local first_job_id=$1 cpus memory
  cpus="$(nproc)"
  # RealMemory above what slurmd measures makes the node INVALID: take its own reading.
  memory="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"
  mkdir -p "$CONF"
  cat >"$CONF/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh (fromscratch): a one-node cluster on localhost.
ClusterName=${CLUSTER}
SlurmctldHost=$(node_name)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job may start again only after cred_expire seconds (default 120).
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
# No cgroups here: track processes through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
FirstJobId=${first_job_id}
SchedulerType=sched/backfill
# Look at pending jobs every 2 s, not every 30-60 s: a requeued job restarts as soon as
# its cred_expire wait is over.
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=${RUN}/state
SlurmdSpoolDir=${RUN}/spool
SlurmctldPidFile=${RUN}/slurmctld.pid
SlurmdPidFile=${RUN}/slurmd.pid
SlurmctldLogFile=${RUN}/log/slurmctld.log
SlurmdLogFile=${RUN}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Finished jobs stay visible to squeue/scontrol for 30 min (Snakemake's status checks).
MinJobAge=1800
# Seconds between SIGTERM and SIGKILL at a time limit or scancel.
KillWait=5
InactiveLimit=0
GresTypes=gpu
NodeName=$(node_name) NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory} Gres=gpu:${GPUS} State=UNKNOWN
PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  # SLURM drops a GPU GRES without a device file ("Removing file-less GPU") and the node goes
  # INVALID: point it at character devices with the numbers of /dev/null.
  for i in $(seq 0 $((GPUS - 1))); do
    [ -c "$RUN/fakegpu$i" ] || mknod "$RUN/fakegpu$i" c 1 3
  done
  cat >"$CONF/gres.conf" <<EOF
AutoDetect=off
NodeName=$(node_name) Name=gpu File=${RUN}/fakegpu[0-$((GPUS - 1))]
EOF
}

write_slurmdbd_conf() {
  cat >"$CONF/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=${RUN}/log/slurmdbd.log
PidFile=${RUN}/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=${DB_PASS}
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$CONF/slurmdbd.conf" # slurmdbd refuses a config others can read
}

start_munge() {
  mkdir -p "$RUN/munge" /run/munge /etc/munge
  chown munge:munge "$RUN/munge" /run/munge
  chmod 0700 "$RUN/munge"
  chmod 0755 /run/munge
  [ -s /etc/munge/munge.key ] ||
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged --log-file="$RUN/munge/munged.log" \
    --pid-file="$RUN/munge/munged.pid" --seed-file="$RUN/munge/munged.seed" </dev/null >/dev/null 2>&1
  wait_for 10 bash -c "munge -n </dev/null | unmunge" ||
    die "munged does not answer: see $RUN/munge/munged.log"
}

start_mariadb() {
  local data="$RUN/mysql"
  mkdir -p "$data" "$RUN/mysqlrun"
  chown mysql:mysql "$data" "$RUN/mysqlrun"
  if [ ! -d "$data/mysql" ]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$data" \
      --auth-root-authentication-method=socket --skip-test-db >"$RUN/log/mariadb-install.log" 2>&1 ||
      die "mariadb-install-db failed: see $RUN/log/mariadb-install.log"
  fi
  setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$data" \
    --socket="$DB_SOCKET" --port=3306 --bind-address=127.0.0.1 \
    --pid-file="$RUN/mysqlrun/mysql.pid" --log-error="$RUN/log/mariadb.log" \
    --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
  wait_for 30 mariadb --socket="$DB_SOCKET" -e 'SELECT 1' ||
    die "MariaDB does not answer on $DB_SOCKET: see $RUN/log/mariadb.log"
  mariadb --socket="$DB_SOCKET" -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    FLUSH PRIVILEGES;"
}

start_slurmdbd() {
  /usr/sbin/slurmdbd </dev/null >/dev/null 2>&1
  wait_for 30 sacctmgr -n list cluster ||
    die "slurmdbd does not answer: see $RUN/log/slurmdbd.log"
  sacctmgr -nP list cluster format=cluster | grep -qx "$CLUSTER" ||
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
}

start_slurm() {
  /usr/sbin/slurmctld -c </dev/null >/dev/null 2>&1 # -c: no jobs or node states from before
  wait_for 20 bash -c 'scontrol ping | grep -q "is UP"' ||
    die "slurmctld does not answer: see $RUN/log/slurmctld.log"
  /usr/sbin/slurmd </dev/null >/dev/null 2>&1
  if ! wait_for 30 node_is_usable; then
    tail -n 5 "$RUN/log/slurmd.log" "$RUN/log/slurmctld.log" >&2 || true
    die "node $(node_name) is '$(node_state)', not idle, after 30 s: see $RUN/log/"
  fi
  wait_for 20 sacct -n -X -S now || die "sacct fails: see $RUN/log/slurmdbd.log"
}

start() {
  local began=$SECONDS
  [ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts system daemons)"
  if is_up && [ "$(cat "$RUN/fingerprint" 2>/dev/null)" = "$(fingerprint)" ]; then
    say "already up (node $(node_name), partition $PARTITION); 'restart' starts afresh"
    return 0
  fi
  install_missing
  stop_daemons
  mkdir -p "$RUN"/{state,spool,log}
  start_munge
  start_mariadb
  write_slurm_conf "$(next_job_id)"
  write_slurmdbd_conf
  start_slurmdbd
  start_slurm
  fingerprint >"$RUN/fingerprint"
  sinfo
  say "up in $((SECONDS - began)) s: node $(node_name), partition $PARTITION, $GPUS fake GPUs," \
    "accounting via slurmdbd, logs in $RUN/log"
}

status() {
  if is_up; then
    say "up: node $(node_name) is $(node_state), partition $PARTITION, logs in $RUN/log"
    return 0
  fi
  say "down"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop)
    stop_daemons
    say "stopped"
    ;;
  restart)
    stop_daemons
    start
    ;;
  status) status ;;
  *) die "usage: bash tests/slurm/cluster.sh start|stop|restart|status" ;;
esac
