"""Faults that used to end with exit 0 and wrong numbers, or lose the file name a user needs
(issue 22): each test reproduces one fault and asserts the refusal or the message, and, where a
wrong number was possible, that it is never written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import save_ckpt, tiny_cfg
from train_helpers import final_state
from train_helpers import tiny_cfg as train_cfg

from srcr.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def eval_root(tmp_path_factory):
    from srcr.data.synthetic_gen import ensure_synthetic

    root = tmp_path_factory.mktemp("syn") / "synthetic"
    ensure_synthetic(root, 4, 4, (32, 64), 0, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def trained(syn_root, tmp_path_factory):
    """A tiny run trained to completion (6 iterations, a checkpoint every 2), its config and the
    metrics of its final.pth; tests copy the run before damaging it."""
    from srcr.evaluate import evaluate
    from srcr.train import train

    cfg = train_cfg(syn_root)
    tmp = tmp_path_factory.mktemp("trained")
    train(cfg, tmp / "run", progress=False)
    rec = evaluate(cfg, tmp / "run", tmp / "eval", device="cpu", progress=False)
    return cfg, tmp / "run", rec


# 1 ------------------------------------------------------------------------------------------


def test_evaluate_refuses_model_settings_other_than_the_checkpoints(eval_root, tmp_path):
    from srcr.evaluate import evaluate

    cfg = tiny_cfg(eval_root, "model.align=srm", "eval.num_vis=0", "eval.offset_images=0")
    ckpt = save_ckpt(cfg, tmp_path / "run" / "checkpoints" / "final.pth")
    out = tmp_path / "eval"
    # the weights fit (same shapes), but the model computes something else
    shifted = tiny_cfg(
        eval_root,
        "model.align=srm",
        "eval.num_vis=0",
        "eval.offset_images=0",
        "model.coarse_shift=1.0",
        "model.align_options={weight_norm: sigmoid}",
    )
    with pytest.raises(UserError) as e:
        evaluate(shifted, ckpt, out, device="cpu", progress=False)
    msg = str(e.value)
    assert "model.coarse_shift: checkpoint 0.0, requested 1.0" in msg
    assert "model.align_options.weight_norm" in msg and "sigmoid" in msg
    assert "--allow-config-mismatch" in msg
    assert not (out / "metrics.json").exists() and not (out / "per_image.npz").exists()
    # the normalisation counts too
    with pytest.raises(UserError, match=r"data\.mean"):
        evaluate(
            tiny_cfg(eval_root, "data.mean=[1, 2, 3]"), ckpt, out, device="cpu", progress=False
        )
    # eval settings may differ freely; an explicit override is recorded
    rec = evaluate(shifted, ckpt, out, device="cpu", progress=False, allow_config_mismatch=True)
    stored = json.loads((out / "metrics.json").read_text())["config_mismatch"]
    assert stored == rec["config_mismatch"] and stored["allowed"] is True
    assert stored["keys"]["model.coarse_shift"]["requested"] == 1.0
    assert {"model.coarse_shift", "model.align_options.weight_norm"} <= set(stored["keys"])


# 2 ------------------------------------------------------------------------------------------


def test_a_key_defined_twice_is_refused_naming_file_line_and_key(tmp_path):
    from srcr.config import load_config, parse_yaml_value
    from srcr.suite.grid import load_grid

    run_cfg = tmp_path / "run.yaml"
    run_cfg.write_text("model:\n  num_classes: 10\n  align: srm\n  align: bilinear\n")
    with pytest.raises(UserError) as e:
        load_config(run_cfg)
    assert f"{run_cfg}, line 4: duplicate key 'align' (first defined on line 3)" in str(e.value)

    grid = (REPO / "ablations" / "grid.yaml").read_text()
    again = (
        "  srm_none:\n    description: FAM under the name srm_none\n    set: {model.align: fam}\n"
    )
    assert "\n  bilinear_crm:\n" in grid
    dup = tmp_path / "grid.yaml"  # srm_none defined a second time, after its real definition
    dup.write_text(grid.replace("\n  bilinear_crm:\n", "\n" + again + "  bilinear_crm:\n", 1))
    with pytest.raises(UserError, match=rf"{dup}, line \d+: duplicate key 'srm_none'"):
        load_grid(dup)
    with pytest.raises(UserError, match="duplicate key 'a'"):
        parse_yaml_value("{a: 1, a: 2}")
    # merge keys may be overridden on purpose
    ok = tmp_path / "merge.yaml"
    ok.write_text("base: &b {x: 1}\nmore:\n  <<: *b\n  x: 2\n")
    from srcr.config import load_yaml

    assert load_yaml(ok)["more"] == {"x": 2}


# 3 ------------------------------------------------------------------------------------------


def _damage(path: Path, at: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[at : at + 64] = bytes(64)
    path.write_bytes(bytes(data))


def test_damaged_checkpoints_are_named_never_used(trained, tmp_path, capsys):
    import shutil

    from srcr.engine.checkpoint import list_checkpoints
    from srcr.evaluate import evaluate
    from srcr.train import train

    cfg, ref, rec = trained
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    final = run / "checkpoints" / "final.pth"
    assert (run / "checkpoints" / "final.pth.sha256").read_text().split()[1] == "final.pth"
    ckpts = list_checkpoints(run / "checkpoints")
    assert all(p.with_name(p.name + ".sha256").is_file() for _, p in ckpts)

    # evaluation of an overwritten final.pth: refused, nothing written
    _damage(final)
    with pytest.raises(UserError, match=rf"checkpoint {final} is damaged: its sha256 .*\.sha256"):
        evaluate(cfg, final, tmp_path / "eval", device="cpu", progress=False)
    assert not (tmp_path / "eval").exists()
    # nor does a damaged pretraining checkpoint initialise a backbone
    from srcr.models.backbones.build import read_state_dict

    with pytest.raises(UserError, match=rf"model.pretrained: {final} is damaged"):
        read_state_dict(str(final))

    # training: a final.pth cut to half is not "complete"; it is trained again from the newest
    # good checkpoint, and the newest being damaged too, from the one before (both named)
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])
    ckpts = list_checkpoints(run / "checkpoints")
    newest, previous = ckpts[-1][1], ckpts[-2][1]
    _damage(newest)
    capsys.readouterr()
    summary = train(cfg, run, progress=False)
    err = capsys.readouterr().err
    assert "already complete" not in err and summary["status"] == "trained"
    events = (run / "events.log").read_text()
    assert f"{final} is damaged" in events
    assert f"checkpoint {newest} is damaged" in events and f"falling back to {previous}" in events
    assert summary["resumed_from"] == ckpts[-2][0]
    new, old = final_state(run), final_state(ref)
    assert new.keys() == old.keys() and all(bool((new[k] == old[k]).all()) for k in new)
    again = evaluate(cfg, run, tmp_path / "eval", device="cpu", progress=False)
    assert again["metrics"]["mIoU"] == rec["metrics"]["mIoU"]

    # every checkpoint damaged: refused, naming them
    for _, p in list_checkpoints(run / "checkpoints"):
        _damage(p)
    final.unlink()
    with pytest.raises(UserError, match=r"no good checkpoint in .*\n.*is damaged"):
        train(cfg, run, progress=False)


# 4 ------------------------------------------------------------------------------------------


def test_report_refuses_swapped_counts_and_variants_with_missing_seeds(tmp_path, capsys):
    import shutil

    from report_fixtures import make_tree

    from srcr.report.cli import make_report

    results, grid = make_tree(tmp_path, seeds=(0, 1))
    out = tmp_path / "reports"
    table = out / "synthetic" / "tables" / "main.csv"

    def report(**kw):
        return make_report(
            [results], grid, out, tables=["main"], n_boot=100, progress=False, figures=False, **kw
        )

    # seed 0's per-image counts copied over seed 1's: refused, no table written
    seed1 = results / "better" / "seed1" / "eval"
    kept = (seed1 / "per_image.npz").read_bytes()
    shutil.copy(results / "better" / "seed0" / "eval" / "per_image.npz", seed1 / "per_image.npz")
    with pytest.raises(
        UserError,
        match=rf"{seed1 / 'per_image.npz'} does not reproduce "
        rf"{seed1 / 'metrics.json'} \(aAcc .* recorded",
    ):
        report()
    assert not table.exists()
    (seed1 / "per_image.npz").write_bytes(kept)

    # a deleted run: refused, naming the variant and the seed
    shutil.rmtree(results / "better" / "seed1")
    with pytest.raises(UserError, match=r"table 'main': better seed\(s\) 1 \(.*better/seed1/eval"):
        report()
    assert not table.exists()
    # --allow-missing: a warning, and a note under the table
    capsys.readouterr()
    report(allow_missing=True)
    assert "missing runs (--allow-missing)" in capsys.readouterr().err
    md = (out / "synthetic" / "tables" / "main.md").read_text()
    assert "Missing runs (--allow-missing): better seed(s) 1;" in md


# 5 ------------------------------------------------------------------------------------------


def test_truncated_per_image_npz_is_named_and_not_taken_as_complete(eval_root, tmp_path, capsys):
    from srcr.evaluate import evaluate
    from srcr.metrics import load_per_image

    cfg = tiny_cfg(eval_root, "eval.num_vis=0")
    ckpt = save_ckpt(cfg, tmp_path / "final.pth")
    out = tmp_path / "eval"
    first = evaluate(cfg, ckpt, out, device="cpu", progress=False)
    npz = out / "per_image.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    with pytest.raises(UserError, match=rf"{npz}: cannot read per-image counts \(BadZipFile"):
        load_per_image(npz)
    capsys.readouterr()
    again = evaluate(cfg, ckpt, out, device="cpu", progress=False)
    err = capsys.readouterr().err
    assert "already complete" not in err and f"{npz}: cannot read" in err
    assert load_per_image(npz)["names"] and again["metrics"]["mIoU"] == first["metrics"]["mIoU"]


# 6 ------------------------------------------------------------------------------------------


def test_failed_writes_name_path_and_cause_and_leave_nothing_half_written(
    eval_root, tmp_path, monkeypatch, capsys
):
    import errno

    import numpy as np
    import torch
    import yaml

    from srcr.cli import main
    from srcr.engine.checkpoint import save_final
    from srcr.utils import io

    # a legal 249-character name: the temporary name beside it stays legal too
    long = tmp_path / ("r" * 244 + ".json")
    io.write_json(long, {"a": 1})
    assert json.loads(long.read_text()) == {"a": 1} and len(long.name) == 249
    with pytest.raises(UserError, match=r"file name too long \(300 bytes; .*\) while writing"):
        io.write_json(tmp_path / ("r" * 295 + ".json"), {"a": 1})

    # torch on a full disk: "unexpected pos" without a path
    def full_disk(obj, f, *a, **k):
        raise RuntimeError(
            "[enforce fail at inline_container.cc:595] . unexpected pos 3107712 vs 3107604"
        )

    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: type("U", (), {"free": 1024})())
    full = rf"no space left on device while writing {tmp_path}/c/final\.pth"
    with pytest.raises(UserError, match=full):
        save_final(tmp_path / "c", {"model": {}})
    assert list((tmp_path / "c").iterdir()) == []  # no temporary file, no sidecar
    monkeypatch.undo()

    # a read-only folder
    def read_only(*a, **k):
        raise PermissionError(errno.EROFS, "Read-only file system", str(tmp_path / "ro" / ".x.tmp"))

    monkeypatch.setattr(io.tempfile, "mkstemp", read_only)
    ro = rf"read-only file system while writing {tmp_path}/ro/x\.json"
    with pytest.raises(UserError, match=ro):
        io.write_json(tmp_path / "ro" / "x.json", {})
    monkeypatch.undo()

    # `srcr evaluate` on a disk that fills up while writing per_image.npz: one line, exit 2, and
    # no output of it stays (nor the earlier, complete evaluation of another config)
    cfg = tiny_cfg(eval_root, "eval.num_vis=2")
    ckpt = save_ckpt(cfg, tmp_path / "run" / "final.pth")
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--config",
        str(cfg_path),
        "--checkpoint",
        str(ckpt),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 0 and (out / "metrics.json").is_file() and (out / "vis").is_dir()
    real = np.savez_compressed

    def no_space(f, **arrays):
        if "names" in arrays:  # per_image.npz
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(f, **arrays)

    monkeypatch.setattr(np, "savez_compressed", no_space)
    capsys.readouterr()
    assert main(args + ["--set", "eval.flip=true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"srcr evaluate: error: no space left on device while writing {out / 'per_image.npz'}"
    )
    assert sorted(p.name for p in out.iterdir()) == []


# 8 ------------------------------------------------------------------------------------------


def test_a_second_train_on_one_run_folder_is_refused_naming_pid_and_host(trained, tmp_path, capsys):
    import os
    import shutil
    import socket
    import subprocess
    import sys

    from srcr.engine.runlock import LOCK_NAME, RunLocks
    from srcr.train import train

    cfg, ref, _ = trained
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    (run / "checkpoints" / "final.pth").unlink()  # so that a second process would train it
    mtimes = {p: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()}
    host = socket.gethostname()
    with RunLocks() as locks:
        locks.take([run])
        with pytest.raises(
            UserError,
            match=rf"{run} is in use by another srcr train \(PID "
            rf"{os.getpid()} on host {host}, since .*{LOCK_NAME}",
        ):
            train(cfg, run, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()} == mtimes
    # another host's lock: refused, naming the file to remove
    lock = run / LOCK_NAME
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "then"}))
    with pytest.raises(UserError, match=rf"PID 1 on host elsewhere.*remove {lock}"):
        train(cfg, run, progress=False)
    # a lock left by a process of this host that has ended: taken over
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    lock.write_text(json.dumps({"pid": int(dead), "host": host, "since": "then"}))
    capsys.readouterr()
    assert train(cfg, run, progress=False)["status"] == "trained"
    err = capsys.readouterr().err
    assert f"taking over the lock of {run} from PID {dead} (no longer running)" in err
    assert lock.read_text() == ""  # released


# 9 ------------------------------------------------------------------------------------------


def test_ctrl_c_is_a_stop_request_and_failures_reach_events_log(trained, tmp_path, monkeypatch):
    import os
    import shutil
    import signal

    import srcr.train as train_mod
    from srcr.engine.signals import StopRequest

    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal_name == "SIGINT"  # noted: the loop checkpoints and stops
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once
            os.kill(os.getpid(), signal.SIGINT)

    cfg, ref, _ = trained
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    (run / "checkpoints" / "final.pth").unlink()

    def bad_data(cfg, ctx=None):
        raise UserError("data/x/labels/00001.png: label 77 is not a class")

    monkeypatch.setattr(train_mod, "build_train_dataset", bad_data)
    with pytest.raises(UserError):
        train_mod.train(cfg, run, progress=False)
    last = (run / "events.log").read_text().splitlines()[-1]
    assert last.endswith("failed: data/x/labels/00001.png: label 77 is not a class")


# 10 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "var,value", [("SRCR_THREADS", "0"), ("SRCR_THREADS", "-2"), ("SLURM_CPUS_PER_TASK", "0")]
)
def test_a_thread_count_below_one_from_the_environment_is_refused(
    var, value, tmp_path, monkeypatch, capsys
):
    from srcr.cli import main
    from srcr.utils.threads import resolve_threads

    for v in ("SRCR_THREADS", "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(var, value)
    with pytest.raises(
        UserError,
        match=rf"environment variable {var}='{value}': expected a thread "
        r"count >= 1",
    ):
        resolve_threads(None)
    assert resolve_threads(3) == 3  # --threads decides
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: {num_classes: 10}\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert f"{var}='{value}'" in capsys.readouterr().err and not (tmp_path / "run").exists()
