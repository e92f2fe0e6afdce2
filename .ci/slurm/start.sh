#!/usr/bin/env bash
# Start a throw-away single-node Slurm "cluster" on loopback (Debian bookworm, Slurm 22.05, run as root).
# tarun's Slurm tests use it (tests/slurm.rs); .ci/run starts it. SLURM_TEST_CPUS sets the CPUs the node
# offers (default: the machine's), so that more tiny test jobs run side by side than there are cores.
# Usage: [SLURM_TEST_DIR=<short dir>] [WITH_ACCOUNTING=1] bash start.sh   -> prints "export SLURM_CONF=..." on success
# Stop:   bash stop.sh (kills the PIDs recorded in $SLURM_TEST_DIR/pids)
set -euo pipefail
D=${SLURM_TEST_DIR:-${TMPDIR:-/tmp}/slurm-test}   # keep it short: unix socket paths max ~100 chars
mkdir -p "$D/etc" "$D/state/ctld" "$D/state/d" "$D/log" "$D/run" "$D/munge"
: > "$D/pids"

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
command -v slurmctld >/dev/null && command -v munged >/dev/null || apt_install slurm-wlm munge

t0=$(date +%s.%N)

# --- munge: own key + socket under $D so nothing in /etc or /run is needed --------------------------
if [ ! -s "$D/munge/munge.key" ]; then
  dd if=/dev/urandom of="$D/munge/munge.key" bs=1 count=1024 status=none
fi
chmod 755 "$D/munge"; chmod 400 "$D/munge/munge.key"   # 755 so non-root job submitters reach the socket
MUNGE_SOCK="$D/munge/munge.socket.2"
# --force: munged otherwise refuses to run as root / with a non-root-owned dir layout
munged --force --key-file="$D/munge/munge.key" --socket="$MUNGE_SOCK" \
       --pid-file="$D/munge/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/munge/munge.seed"
for _ in $(seq 50); do [ -s "$D/munge/munged.pid" ] && break; sleep 0.1; done
echo "munged $(cat "$D/munge/munged.pid")" >> "$D/pids"


# --- optional accounting (sacct): MariaDB on 127.0.0.1 + slurmdbd --------------------------------
ACCT_LINES="AccountingStorageType=accounting_storage/none"
if [ "${WITH_ACCOUNTING:-0}" = 1 ]; then
  command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null || apt_install slurmdbd mariadb-server
  DB_PORT=${SLURM_TEST_DB_PORT:-3306}
  mkdir -p "$D/mysql"
  if [ ! -d "$D/mysql/mysql" ]; then
    mariadb-install-db --user=root --datadir="$D/mysql" --auth-root-authentication-method=normal \
      --skip-test-db >"$D/log/mariadb-install.log" 2>&1
  fi
  mariadbd --no-defaults --user=root --datadir="$D/mysql" --socket="$D/run/mysqld.sock" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --pid-file="$D/run/mysqld.pid" \
    --log-error="$D/log/mariadb.log" --innodb-buffer-pool-size=64M >"$D/log/mariadb.out" 2>&1 &
  for _ in $(seq 100); do mariadb --no-defaults -S "$D/run/mysqld.sock" -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
  echo "mariadbd $(cat "$D/run/mysqld.pid")" >> "$D/pids"
  mariadb --no-defaults -S "$D/run/mysqld.sock" -uroot -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  cat > "$D/etc/slurmdbd.conf" <<EOF2
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF2
  chmod 600 "$D/etc/slurmdbd.conf"
  SLURM_CONF="$D/etc/slurm.conf" slurmdbd   # reads slurmdbd.conf from the directory of SLURM_CONF
  for _ in $(seq 100); do [ -s "$D/run/slurmdbd.pid" ] && break; sleep 0.1; done
  echo "slurmdbd $(cat "$D/run/slurmdbd.pid")" >> "$D/pids"
  # slurmctld dies ("we have no TRES from it") if slurmdbd is not yet listening: wait for the port
  for _ in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.2; done
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStoragePass=$MUNGE_SOCK
JobAcctGatherFrequency=30"
fi

MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
NCPU=${SLURM_TEST_CPUS:-$(nproc)}

cat > "$D/etc/slurm.conf" <<EOF
ClusterName=tarun-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$D/state/ctld
SlurmdSpoolDir=$D/state/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
SchedulerType=sched/backfill
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
$ACCT_LINES
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
MaxArraySize=1001
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$NCPU RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF="$D/etc/slurm.conf"

slurmctld -i -f "$SLURM_CONF"          # -i: ignore any stale state; daemonises, writes its pid file
slurmd -N localhost -f "$SLURM_CONF"   # -N: node name, since the hostname is not "localhost"
for _ in $(seq 100); do
  [ -s "$D/run/slurmctld.pid" ] && [ -s "$D/run/slurmd.pid" ] && break; sleep 0.1
done
echo "slurmctld $(cat "$D/run/slurmctld.pid")" >> "$D/pids"
echo "slurmd $(cat "$D/run/slurmd.pid")" >> "$D/pids"

# wait until the node is schedulable
deadline=$(( $(date +%s) + 60 ))
st=
while [ "$(date +%s)" -lt "$deadline" ]; do
  kill -0 "$(cat "$D/run/slurmctld.pid")" 2>/dev/null || break   # slurmctld died: give up at once
  st=$(timeout 5 sinfo -h -N -o '%t' 2>/dev/null | head -1 || true)
  case "$st" in idle|mix|alloc) break;; esac
  sleep 0.1
done
t1=$(date +%s.%N)
echo "node state: ${st:-none}; startup took $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s" >&2
[ "$st" = idle ] || { tail -n 20 "$D/log/slurmctld.log" "$D/log/slurmd.log" >&2; exit 1; }
echo "export SLURM_CONF=$SLURM_CONF"
