#!/usr/bin/env bash
# The cluster path, tested for real: a single-node SLURM cluster on this machine
# (tests/cluster/slurm-local.sh), the smoke DAG through `--profile profiles/slurm`, preemption,
# and a paper-scale resource request. Run from anywhere, as root (or with sudo available):
#
#   bash tests/cluster/ci.sh
#
# Steps (each prints a "== [N] ..." line; any failed check exits non-zero):
#   1. SLURM up (apt packages installed if missing; the executor plugin pip-installed if missing)
#   2. the reference: the cluster-check suite (config/suite_smoke.yaml, one seed, the `loss` table, a
#      60-iteration schedule so a training can be caught mid-run) run locally, --cores 2
#   3. the same suite through profiles/slurm, account and partition given on the command line;
#      when the first training job has written a checkpoint, snakemake gets SIGINT (it cancels its
#      SLURM jobs: SIGTERM, `srcr train` checkpoints and exits 75)
#   4. the workflow started again; a training job is `scontrol requeue`d mid-run (SIGTERM, SLURM
#      runs the same job again, it resumes); the workflow finishes
#   5. checks: every compute job of the DAG ran as a SLURM job and COMPLETED (sacct), no local
#      rule did; runs.csv and every metrics.json equal the local reference; both interrupted
#      trainings logged "interrupted by" and "resuming ... from"
#   6. a paper-scale training job (config/suite_cityscapes.yaml, no data present) submitted to the
#      test cluster's (never-up) GPU partition; its request read back with `scontrol show job`
#      (8 GPUs, 32 CPUs in one task, 256000 MB, 2 days, torchrun with 8 processes); cancelled
#   7. SLURM down (also on failure; SRCR_CLUSTER_KEEP=1 keeps it up)
#
# Environment: SRCR_CI_VENV (default .venv: the environment with srcr + snakemake),
# SRCR_CLUSTER_WORK (scratch directory, default a new /tmp/srcr-cluster.XXXXXX).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${SRCR_CI_VENV:-.venv}
case "$VENV" in /*) ;; *) VENV=$ROOT/$VENV ;; esac
PY=$VENV/bin/python
WORK=${SRCR_CLUSTER_WORK:-$(mktemp -d /tmp/srcr-cluster.XXXXXX)}
mkdir -p "$WORK"
ACCOUNT=local
PARTITION=debug
GPU_PARTITION=gpu
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
# cluster settings for this test cluster: passed on the command line, never written into the profile
SLURM_ARGS=(--profile profiles/slurm --default-resources "slurm_account=$ACCOUNT" "slurm_partition=$PARTITION"
            --slurm-init-seconds-before-status-checks 1)
SUITE=config/cluster_ci.yaml      # generated in each copy from config/suite_smoke.yaml
NAME=clusterci

T0=$(date +%s)
step() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }
ok() { echo "   ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
BG=()
cleanup() {
  local rc=$?
  for p in "${BG[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${BG[@]}"; do wait "$p" 2>/dev/null || true; done
  # processes of this check's jobs that outlived them (proctrack/linuxproc loses a job process
  # whose parent died first): every one names this run's work dir; stop each by its pid
  for p in $(pgrep -f -- "$WORK/" || true); do [ "$p" != $$ ] && kill -9 "$p" 2>/dev/null && echo "   killed leftover job process $p"; done
  if [ "${SRCR_CLUSTER_KEEP:-0}" != 1 ]; then
    step "[7] SLURM down"; $SUDO bash "$HERE/slurm-local.sh" down || true
  fi
  [ $rc = 0 ] && echo "== cluster check PASSED in $(( $(date +%s) - T0 ))s (work dir $WORK)" \
              || echo "== cluster check FAILED (rc $rc; logs under $WORK)" >&2
}
trap cleanup EXIT

# a copy of the working tree (tracked + untracked, not ignored) without results, data, .snakemake
copy_tree() {
  rm -rf "$1"; mkdir -p "$1"
  if git -C "$ROOT" rev-parse >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files --cached --others --exclude-standard -z | tar --null -T - -cf -) | tar -x -C "$1"
  else
    (cd "$ROOT" && tar --exclude=./.venv --exclude=./results --exclude=./data --exclude=./.snakemake -cf - .) | tar -x -C "$1"
  fi
  # the cluster-check suite: smoke, one seed, one table, a schedule long enough to interrupt
  "$PY" - "$1/config/suite_smoke.yaml" "$1/$SUITE" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
over = {"train.iterations": "60", "train.checkpoint_interval": "15", "train.log_interval": "15",
        "train.freeze_backbone": "false"}  # frozen, 60 iterations end before the check can interrupt one
cfg["set"] = [s for s in cfg["set"] if s.split("=", 1)[0] not in over] + [f"{k}={v}" for k, v in over.items()]
cfg.update(name="clusterci", seeds=[0], tables=["loss"], data_root="data/clusterci")
yaml.safe_dump(cfg, open(sys.argv[2], "w"), sort_keys=False)
EOF
}

# start_bg LOG CMD...: run CMD in the background (job control on, so that SIGINT is not ignored)
start_bg() { local log=$1; shift; set -m; "$@" > "$log" 2>&1 & BGPID=$!; set +m; BG+=("$BGPID"); }
# job id of a running SLURM job whose comment (rule_<rule>_wildcards_<w>) matches a regex
running_job() { squeue -h -t R -o '%i %k' | awk -v re="$1" '$2 ~ re {print $1; exit}'; }
# newest iteration checkpoint of a run folder (empty if none)
# (|| true: no checkpoint yet is an empty answer, not a failure under set -e and pipefail)
ckpt() { ls "$1"/checkpoints/iter_*.pth 2>/dev/null | sort | tail -1 | xargs -r basename || true; }

SMK=("$PY" -m snakemake)
export PATH="$VENV/bin:$PATH"

step "[1] environment and SLURM up"
"$PY" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || "$PY" -m pip install -q "snakemake-executor-plugin-slurm>=2.8"
"$PY" -c "import importlib.metadata as m; print('   snakemake', m.version('snakemake'), '| slurm plugin', m.version('snakemake-executor-plugin-slurm'))"
t=$(date +%s); $SUDO bash "$HERE/slurm-local.sh" up; ok "cluster up in $(( $(date +%s) - t ))s"
T_START=$(date +%Y-%m-%dT%H:%M:%S)

step "[2] reference: the cluster-check suite locally (--cores 2)"
copy_tree "$WORK/local"
t=$(date +%s)
(cd "$WORK/local" && PYTHONPATH="$WORK/local" "${SMK[@]}" --cores 2 --configfile "$SUITE" > "$WORK/local.log" 2>&1) \
  || { tail -30 "$WORK/local.log"; fail "local reference run failed (log $WORK/local.log)"; }
ok "local run in $(( $(date +%s) - t ))s"

step "[3] through SLURM; snakemake interrupted (SIGINT) while a training job runs"
copy_tree "$WORK/slurm"
cd "$WORK/slurm"
export PYTHONPATH="$WORK/slurm"
RUNS=results/$NAME
t=$(date +%s)
start_bg "$WORK/slurm-a.log" "${SMK[@]}" "${SLURM_ARGS[@]}" --configfile "$SUITE"
X=""
for _ in $(seq 1 1200); do
  for d in "$RUNS"/*/seed0; do
    [ -d "$d" ] || continue
    if [ -n "$(ckpt "$d")" ] && [ ! -e "$d/checkpoints/final.pth" ]; then X=$d; break 2; fi
  done
  kill -0 "$BGPID" 2>/dev/null || break
  sleep 0.2
done
[ -n "$X" ] || { tail -30 "$WORK/slurm-a.log"; fail "no training caught mid-run (log $WORK/slurm-a.log)"; }
XV=$(basename "$(dirname "$X")")
kill -INT "$BGPID"; rc=0; wait "$BGPID" || rc=$?
[ $rc != 0 ] || fail "snakemake was interrupted but exited 0"
# Snakemake deletes a job's log before it runs the job again: keep the interrupted attempt's
cp "$RUNS/logs/train/$XV/seed0.log" "$WORK/interrupted-$XV.log"
ok "interrupted $XV at $(ckpt "$X"); snakemake exited $rc in $(( $(date +%s) - t ))s"

step "[4] workflow started again; a training job requeued (scontrol requeue) mid-run"
start_bg "$WORK/slurm-b.log" "${SMK[@]}" "${SLURM_ARGS[@]}" --configfile "$SUITE"
declare -A SEEN=()
J=""; Y=""
for _ in $(seq 1 1500); do
  for d in "$RUNS"/*/seed0; do
    [ -d "$d" ] || continue
    v=$(basename "$(dirname "$d")")
    j=$(running_job "^rule_train_wildcards_${v}_0$")
    [ -n "$j" ] || continue
    # the newest checkpoint when the job was first seen running; requeue once it wrote a newer one
    [ -n "${SEEN[$v]+x}" ] || SEEN[$v]="$(ckpt "$d")"
    c=$(ckpt "$d")
    if [ -n "$c" ] && [ "$c" != "${SEEN[$v]}" ] && [ ! -e "$d/checkpoints/final.pth" ]; then J=$j; Y=$d; break 2; fi
  done
  kill -0 "$BGPID" 2>/dev/null || break
  sleep 0.2
done
[ -n "$J" ] || { tail -30 "$WORK/slurm-b.log"; fail "no training caught mid-run for the requeue"; }
YV=$(basename "$(dirname "$Y")")
scontrol requeue "$J"
# keep the interrupted attempt's log (the next attempt starts a new one) once srcr train has
# checkpointed and exited; the requeued job is held for 120 s (BeginTime) until we let it start
for _ in $(seq 1 120); do grep -q "interrupted by" "$RUNS/logs/train/$YV/seed0.log" 2>/dev/null && break; sleep 0.25; done
cp "$RUNS/logs/train/$YV/seed0.log" "$WORK/requeued-$YV.log"
for _ in $(seq 1 20); do scontrol update JobId="$J" StartTime=now 2>/dev/null && break; sleep 0.5; done
ok "requeued SLURM job $J ($YV) at $(ckpt "$Y")"
rc=0; wait "$BGPID" || rc=$?
[ $rc = 0 ] || { tail -40 "$WORK/slurm-b.log"; fail "restarted workflow failed (rc $rc, log $WORK/slurm-b.log)"; }
ok "workflow finished through SLURM (phases 3+4: $(( $(date +%s) - t ))s)"

step "[5] checks: sacct, metrics equal to the local run, resumed trainings"
sleep 2   # a just-finished job can take a second or two to reach slurmdbd
"$PY" - "$WORK" "$T_START" "$J" "$XV" "$YV" <<'EOF'
import csv, glob, json, os, re, subprocess, sys
work, t_start, requeued, xv, yv = sys.argv[1:]
fails = []
def check(cond, msg):
    print(("   ok: " if cond else "   FAIL: ") + msg)
    cond or fails.append(msg)

# the SLURM job ids snakemake submitted, from both runs' logs
ids = []
for name in ("slurm-a.log", "slurm-b.log"):
    ids += re.findall(r"submitted with SLURM jobid (\d+)", open(os.path.join(work, name)).read())
out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "--format=JobIDRaw,Comment,State,Account,Partition"],
                     capture_output=True, text=True, check=True).stdout
jobs = [l.split("|") for l in out.splitlines() if l]
done = {c for _, c, s, _, _ in jobs if s == "COMPLETED"}
check(all(a == "local" and p == "debug" for _, _, _, a, p in jobs), f"{len(jobs)} SLURM jobs, all with account local, partition debug")

# what the DAG has to compute, from the local reference run
ref = list(csv.DictReader(open(f"{work}/local/results/clusterci/runs.csv")))
variants = sorted({r["variant"] for r in ref})
want = {"rule_synth"} | {f"rule_{r}_wildcards_{v}" for r in ("flops",) for v in variants} \
       | {f"rule_{r}_wildcards_{v}_0" for r in ("train", "evaluate") for v in variants}
check(want <= done, f"every compute job ran as a COMPLETED SLURM job ({len(want)}: synth, flops/train/evaluate x {variants})"
      + ("" if want <= done else f"; missing {sorted(want - done)}"))
local_rules = {c for _, c, _, _, _ in jobs if re.match(r"rule_(all|aggregate|tables)\b", c)}
check(not local_rules, "no local rule (aggregate, tables) was submitted")

# the requeued job ran twice under the same id
dup = subprocess.run(["sacct", "-X", "-n", "-P", "-D", "-j", requeued, "--format=State"], capture_output=True, text=True).stdout.split()
check("REQUEUED" in dup and dup[-1] == "COMPLETED", f"job {requeued} was requeued and then completed ({' -> '.join(dup)})")

# metrics: runs.csv and every metrics.json equal the local run's
got = list(csv.DictReader(open(f"{work}/slurm/results/clusterci/runs.csv")))
skip = {"train_time_s", "machine"}
strip = lambda rows: [{k: v for k, v in r.items() if k not in skip} for r in rows]
check(strip(got) == strip(ref), f"runs.csv equals the local run's ({len(ref)} rows, {len(ref[0]) - len(skip)} columns compared)")
def scrub(o):  # a checkpoint's path and sha256 (torch.save is not byte-reproducible), timings
    if isinstance(o, dict):
        return {k: scrub(v) for k, v in o.items() if k not in ("path", "sha256", "seconds")}
    return [scrub(v) for v in o] if isinstance(o, list) else o
import torch
for v in variants:
    rel = f"results/clusterci/{v}/seed0"
    a, b = (json.load(open(f"{work}/{d}/{rel}/eval/metrics.json")) for d in ("local", "slurm"))
    check(scrub(a) == scrub(b), f"{rel}/eval/metrics.json equal (checkpoint path, sha256 and timings left out)")
    a, b = (torch.load(f"{work}/{d}/{rel}/checkpoints/final.pth", map_location="cpu", weights_only=False)["model"]
            for d in ("local", "slurm"))
    check(a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{rel}/checkpoints/final.pth: same weights")

# the interrupted trainings checkpointed on the signal and resumed from a checkpoint, not from 0
for v, how, saved in ((xv, "snakemake interrupted", f"interrupted-{xv}"), (yv, "job requeued", f"requeued-{yv}")):
    intr = re.findall(r"interrupted by (\S+) at iteration (\d+)", open(f"{work}/{saved}.log").read())
    check(bool(intr), f"{v} ({how}): {' '.join(intr[-1]) if intr else 'no interrupt line'} in {saved}.log")
final_logs = {v: open(f"{work}/slurm/results/clusterci/logs/train/{v}/seed0.log").read() for v in {xv, yv}}
for v, log in final_logs.items():
    res = re.findall(r"resuming \S+ from (\S+) \(iteration (\d+)", log)
    check(bool(res) and int(res[-1][1]) > 0, f"{v}: last attempt resumed from {res[-1][0] if res else 'nothing'}")
sys.exit(1 if fails else 0)
EOF

step "[6] a paper-scale training job: submitted, request read back, cancelled"
PAPER_TARGET=results/cityscapes/srm_crm/seed0/checkpoints/final.pth
start_bg "$WORK/paper.log" "${SMK[@]}" --profile profiles/slurm --configfile config/suite_cityscapes.yaml \
  --default-resources "slurm_account=$ACCOUNT" "slurm_partition=$GPU_PARTITION" \
  --slurm-init-seconds-before-status-checks 1 "$PAPER_TARGET"
P=""
for _ in $(seq 1 300); do
  P=$(squeue -h -o '%i %k' | awk '$2 ~ /^rule_train_wildcards_srm_crm_0$/ {print $1; exit}')
  [ -n "$P" ] && break
  kill -0 "$BGPID" 2>/dev/null || break
  sleep 0.5
done
[ -n "$P" ] || { tail -30 "$WORK/paper.log"; fail "the paper-scale job was not submitted (log $WORK/paper.log)"; }
scontrol show job "$P" > "$WORK/paper-job.txt"
sed -n 's/^ *//; /JobState\|TRES=\|TresPer\|NumCPUs\|MinMemory\|TimeLimit\|Partition/p' "$WORK/paper-job.txt" | sed 's/^/   /'
grep -q "JobState=PENDING" "$WORK/paper-job.txt" || fail "paper-scale job not pending"
for want in "gres/gpu=8" "cpu=32" "mem=250G" "TresPerJob=gres:gpu:8" "NumTasks=1 " "CPUs/Task=32" \
            "TimeLimit=2-00:00:00" "Partition=$GPU_PARTITION" "Account=$ACCOUNT" "MinMemoryNode=250G"; do
  grep -qF -- "$want" "$WORK/paper-job.txt" || fail "paper-scale request lacks '$want' (see $WORK/paper-job.txt)"
done
grep -q "torchrun --standalone --nproc_per_node 8 -m srcr.cli train" "$WORK/paper.log" \
  || fail "the paper-scale shell command does not run torchrun with 8 processes"
ok "8 GPUs, 1 task x 32 CPUs, 256000 MB, 2880 min, torchrun x 8"
kill -INT "$BGPID"; wait "$BGPID" || true
for _ in $(seq 1 40); do st=$(sacct -X -n -P -j "$P" --format=State | head -1); [[ "$st" == CANCELLED* ]] && break; sleep 0.5; done
[[ "$st" == CANCELLED* ]] || { scancel "$P" || true; fail "paper-scale job not cancelled by snakemake (state '$st')"; }
ok "job $P cancelled ($st)"
cd "$ROOT"
