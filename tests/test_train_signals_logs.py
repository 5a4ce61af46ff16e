"""`srcr train` under a scheduler: SIGTERM / SIGUSR1 / SIGINT (Ctrl-C) checkpoint at the next
iteration boundary and exit 75, and the rerun ends bit-identical to an uninterrupted run; a log
file gets one plain line per log interval (no progress-bar redraws); bad data leaves no run
folder; summary.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from train_helpers import PY, REPO, assert_same_state, final_state, tiny_cfg, write_cfg

from srcr.engine.checkpoint import list_checkpoints
from srcr.engine.train_log import read_log
from srcr.errors import EXIT_INTERRUPTED


def _cmd(cfg_path: Path, run: Path) -> list[str]:
    return [
        PY,
        "-m",
        "srcr.cli",
        "train",
        "--config",
        str(cfg_path),
        "--out",
        str(run),
        "--threads",
        "1",
    ]


@pytest.fixture(scope="module")
def uninterrupted(syn_root, tmp_path_factory):
    # checkpoint_interval beyond the run: without the signal handler nothing would be saved
    cfg = tiny_cfg(
        syn_root, "train.iterations=40", "train.checkpoint_interval=1000", "train.log_interval=1"
    )
    tmp = tmp_path_factory.mktemp("sig")
    cfg_path = write_cfg(tmp / "cfg.yaml", cfg)
    ref = subprocess.run(
        _cmd(cfg_path, tmp / "ref"),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr
    return cfg_path, tmp / "ref"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_stop_signal_checkpoints_mid_interval_and_resumes_exactly(sig, uninterrupted, tmp_path):
    cfg_path, ref = uninterrupted
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    run = tmp_path / "stopped"
    proc = subprocess.Popen(
        _cmd(cfg_path, run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while len(read_log(run / "log.jsonl")) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "training did not start"
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    done = [i for i, _ in list_checkpoints(run / "checkpoints")]
    assert len(done) == 1 and 3 <= done[0] < 40, (done, err)
    assert f"interrupted by {sig.name} at iteration {done[0]} of 40" in err
    assert not (run / "checkpoints" / "final.pth").exists() and not (run / "summary.json").exists()

    res = subprocess.run(_cmd(cfg_path, run), env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"from iter_{done[0]:07d}.pth" in res.stderr
    events = (run / "events.log").read_text()
    assert (
        events.count(" training ") == 2
        and f"interrupted by {sig.name}" in events
        and "resuming" in events
    )
    assert_same_state(final_state(ref), final_state(run))
    strip = lambda recs: [{k: v for k, v in r.items() if k != "images_per_s"} for r in recs]  # noqa: E731
    assert strip(read_log(ref / "log.jsonl")) == strip(read_log(run / "log.jsonl"))


def test_log_file_gets_plain_lines_not_bar_redraws(syn_root, tmp_path):
    cfg = tiny_cfg(syn_root, "train.iterations=12", "train.log_interval=4")
    cfg_path = write_cfg(tmp_path / "cfg.yaml", cfg)
    log_path = tmp_path / "train.log"
    with open(log_path, "w") as f:  # stderr is a file, as under Snakemake's log: or SLURM
        res = subprocess.run(
            _cmd(cfg_path, tmp_path / "run"),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    text = log_path.read_text()
    assert res.returncode == 0, text
    assert "\r" not in text and "it/s" not in text  # no tqdm redraws
    lines = [ln for ln in text.splitlines() if ": iter " in ln]
    assert [ln.split(": iter ")[1].split(" ")[0] for ln in lines] == ["4/12", "8/12", "12/12"]
    assert all(" | lr " in ln and "img/s" in ln and "loss " in ln for ln in lines)
    assert all("ETA " in ln for ln in lines)

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["iterations"] == 12 and summary["params"] > 0 and summary["train_time_s"] > 0
    assert summary["machine"]["device"] == "cpu" and summary["machine"]["threads"] == 1


def test_missing_data_root_leaves_no_run_folder(tmp_path, capsys):
    from srcr.cli import main

    cfg = tiny_cfg(tmp_path / "nowhere")
    cfg["data"]["dataset"] = "cityscapes"
    cfg["model"]["num_classes"] = 19
    cfg_path = write_cfg(tmp_path / "cfg.yaml", cfg)
    rc = main(["train", "--config", str(cfg_path), "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_events_log_keeps_start_and_finish(syn_root, tmp_path):
    from srcr.train import train

    cfg = tiny_cfg(syn_root)
    train(cfg, tmp_path / "run", progress=False)
    lines = (tmp_path / "run" / "events.log").read_text().splitlines()
    assert len(lines) == 2 and " training " in lines[0] and " finished 6 iterations" in lines[1]
