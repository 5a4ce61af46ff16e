"""`srcr train`: end to end on a tiny synthetic set, determinism, resume after SIGKILL (bit-exact),
completed runs, config mismatch, non-finite loss, the seeded sampler, and the paper-scale configs
on tiny fixtures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch
import yaml
from train_helpers import (
    PY,
    REPO,
    TINY_MODEL,
    assert_same_state,
    final_state,
    log_values,
    tiny_cfg,
    tiny_overrides,
    write_cfg,
)

from srcr.config import load_config
from srcr.engine.checkpoint import list_checkpoints
from srcr.engine.sampler import InfiniteSeededSampler
from srcr.engine.train_log import read_log
from srcr.errors import UserError
from srcr.train import TrainingDiverged, train

# ----------------------------------------------------------------------------------------------------
# the sampler


def test_sampler_is_a_pure_function_of_seed_and_iteration_and_shards_the_global_batch():
    single = InfiniteSeededSampler(10, seed=3, global_batch=4)
    stream = [
        single.batch(i) for i in range(7)
    ]  # crosses epoch boundaries (10 items, 4 per iteration)
    # every epoch is a permutation of the dataset
    flat = [idx for b in stream for idx, _ in b]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    # per-sample seeds differ, and are those documented: derive_seed(seed, epoch, position)
    from srcr.utils.seed import derive_seed

    assert stream[0][0][1] == derive_seed(3, 0, 0) and stream[3][0][1] == derive_seed(3, 1, 2)
    # resuming at iteration 5 gives the same batches; two ranks' slices concatenate to the global batch
    resumed = InfiniteSeededSampler(10, seed=3, global_batch=4, start_iter=5)
    it = iter(resumed)
    assert [next(it) for _ in range(4)] == stream[5]
    r0 = InfiniteSeededSampler(10, seed=3, global_batch=4, rank=0, world_size=2)
    r1 = InfiniteSeededSampler(10, seed=3, global_batch=4, rank=1, world_size=2)
    for i in range(7):
        assert r0.batch(i) + r1.batch(i) == stream[i]
    assert InfiniteSeededSampler(10, seed=4, global_batch=4).batch(0) != stream[0]
    with pytest.raises(ValueError):
        InfiniteSeededSampler(10, seed=3, global_batch=5, world_size=2)


# ----------------------------------------------------------------------------------------------------
# end to end


def test_train_end_to_end_determinism_and_completion(syn_root, tmp_path, one_thread, capsys):
    cfg = tiny_cfg(syn_root)
    a = train(cfg, tmp_path / "a", progress=False)
    assert a["status"] == "trained"
    run = tmp_path / "a"
    # resolved config, log, newest K checkpoints + final
    assert yaml.safe_load((run / "config.yaml").read_text()) == cfg
    assert [i for i, _ in list_checkpoints(run / "checkpoints")] == [4, 6]
    ckpt = torch.load(
        run / "checkpoints" / "iter_0000006.pth", map_location="cpu", weights_only=True
    )
    assert ckpt["iteration"] == 6 and ckpt["config"] == cfg and "optimizer" in ckpt
    log = read_log(run / "log.jsonl")
    assert [r["iteration"] for r in log] == [1, 2, 3, 4, 5, 6]
    for r in log:
        assert {"loss", "ce", "aux", "contrast", "lr", "images_per_s"} <= set(r)
        assert r["loss"] == pytest.approx(r["ce"] + r["aux"] + r["contrast"], rel=1e-5)
    assert (
        log[0]["contrast"] == 0.0 and log[-1]["contrast"] > 0
    )  # contrastive warm-up of 2 iterations
    assert log[0]["lr"] < log[2]["lr"]  # warm-up

    # same seed -> identical weights, also with DataLoader workers (augmentation is per-sample seeded)
    train(
        load_config(None, tiny_overrides(syn_root) + ["data.num_workers=2"]),
        tmp_path / "b",
        progress=False,
    )
    assert_same_state(final_state(run), final_state(tmp_path / "b"))
    assert log_values(run) == log_values(tmp_path / "b")
    # another seed -> other weights
    train(tiny_cfg(syn_root, "seed=1"), tmp_path / "c", progress=False)
    sa, sc = final_state(run), final_state(tmp_path / "c")
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)

    # a finished run started again does nothing
    mtime = (run / "checkpoints" / "final.pth").stat().st_mtime_ns
    capsys.readouterr()
    again = train(cfg, run, progress=False)
    assert again["status"] == "complete"
    assert "already complete" in capsys.readouterr().err
    assert (run / "checkpoints" / "final.pth").stat().st_mtime_ns == mtime
    assert len(read_log(run / "log.jsonl")) == 6

    # a different config on the same run directory is refused, naming the differing keys
    with pytest.raises(UserError) as e:
        train(tiny_cfg(syn_root, "train.iterations=8", "model.align=bilinear"), run, progress=False)
    assert "train.iterations: saved 6, now 8" in str(e.value) and "model.align" in str(e.value)
    # data.num_workers does not change results, so it may differ
    assert (
        train(tiny_cfg(syn_root, "data.num_workers=1"), run, progress=False)["status"] == "complete"
    )


def test_resume_after_sigkill_is_bit_exact(syn_root, tmp_path, one_thread):
    over = ["train.iterations=24", "train.checkpoint_interval=3", "train.log_interval=2"]
    cfg = tiny_cfg(syn_root, *over)
    train(cfg, tmp_path / "ref", progress=False)

    cfg_path = write_cfg(tmp_path / "cfg.yaml", cfg)
    run = tmp_path / "killed"
    cmd = [
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
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list_checkpoints(run / "checkpoints"):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done = [i for i, _ in list_checkpoints(run / "checkpoints")]
    assert not (run / "checkpoints" / "final.pth").exists() and max(done) < 24, (
        "killed too late to test resume"
    )

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"resuming {run} from iter_{max(done):07d}.pth" in res.stderr
    assert_same_state(final_state(tmp_path / "ref"), final_state(run))
    # the log resumed cleanly: lines beyond the checkpoint were dropped, none duplicated
    assert log_values(tmp_path / "ref") == log_values(run)


def test_nonfinite_loss_stops_with_iteration_and_term(syn_root, tmp_path, monkeypatch, capsys):
    import srcr.losses

    real = srcr.losses.build_criterion

    def poisoned(loss_cfg, num_classes):
        crit = real(loss_cfg, num_classes)
        forward = crit.forward

        def fwd(outputs, labels, iteration=0, generator=None):
            if iteration >= 4:  # the 5th iteration: its auxiliary head output turns to NaN
                outputs = {**outputs, "aux": outputs["aux"] * float("nan")}
            return forward(outputs, labels, iteration, generator)

        crit.forward = fwd
        return crit

    monkeypatch.setattr(srcr.losses, "build_criterion", poisoned)
    cfg = tiny_cfg(syn_root)
    with pytest.raises(TrainingDiverged) as e:
        train(cfg, tmp_path / "nan", progress=False)
    msg = str(e.value)
    assert "iteration 5" in msg and "'aux'" in msg and "iter_0000004.pth" in msg
    assert e.value.iteration == 5 and e.value.term == "aux"
    ckpts = tmp_path / "nan" / "checkpoints"
    assert [i for i, _ in list_checkpoints(ckpts)] == [2, 4] and not (ckpts / "final.pth").exists()
    last = read_log(tmp_path / "nan" / "log.jsonl")[-1]
    assert last["iteration"] == 5 and last["term"] == "aux"

    # through the CLI: non-zero exit status and the message on stderr
    from srcr.cli import main

    cfg_path = write_cfg(tmp_path / "cfg.yaml", cfg)
    capsys.readouterr()
    rc = main(
        ["train", "--config", str(cfg_path), "--out", str(tmp_path / "nan2"), "--no-progress"]
    )
    assert rc != 0
    assert "non-finite loss at iteration 5: term 'aux'" in capsys.readouterr().err


def test_cli_rejects_bad_config_before_running(tmp_path, capsys):
    from srcr.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {num_classes: 3, align: sfm}\n")
    rc = main(["train", "--config", str(bad), "--out", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "model.align" in err and "bilinear, fam, alignfa, srm" in err
    assert not (tmp_path / "run").exists()
    rc = main(
        ["train", "--config", str(bad), "--out", str(tmp_path / "run"), "--set", "model.alignn=srm"]
    )
    assert rc == 2 and "unknown key 'model.alignn'" in capsys.readouterr().err
    # a class_weight of the wrong length: refused before the data is generated or the run dir written
    bad.write_text(
        f"model: {{num_classes: 10}}\ndata: {{dataset: synthetic, root: {tmp_path / 'syn'}}}\n"
        "train: {loss: {class_weight: [1.0, 2.0]}}\n"
    )
    rc = main(["train", "--config", str(bad), "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "train.loss.class_weight: expected null or a list of 10" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "syn").exists()


# ----------------------------------------------------------------------------------------------------
# paper-scale configs on tiny fixtures


PAPER = {
    "cityscapes_mscan_s.yaml": ("make_cityscapes", {}),
    "bdd100k_mscan_s.yaml": ("make_bdd100k", {}),
    "ade20k_mscan_s.yaml": ("make_ade20k", {}),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_configs_train_two_iterations_on_fixtures(name, tmp_path, one_thread):
    import dataset_fixtures

    maker, kwargs = PAPER[name]
    root = getattr(dataset_fixtures, maker)(tmp_path / "data", **kwargs)
    cfg = load_config(
        REPO / "config" / name,
        TINY_MODEL
        + [
            f"data.root={root}",
            "data.num_workers=0",
            "data.train_pipeline.scale=[64, 128]",
            "data.train_pipeline.crop_size=[32, 32]",
            "train.iterations=2",
            "train.batch_size=2",
            "train.schedule.warmup_iters=1",
            "train.loss.contrastive.warmup=0",
            "train.loss.contrastive.max_samples=64",
            "train.loss.contrastive.max_views=8",
        ],
    )
    assert cfg["model"]["backbone"] == "mscan_t"
    out = train(cfg, tmp_path / "run", progress=False)
    assert out["status"] == "trained"
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert log[-1]["iteration"] == 2 and log[-1]["contrast"] > 0
    assert (tmp_path / "run" / "checkpoints" / "final.pth").exists()


# ----------------------------------------------------------------------------------------------------
# srcr bench train


def test_bench_train_compares_variants(syn_root, tmp_path, capsys):
    from srcr.bench.train import _split_overrides
    from srcr.cli import main

    assert _split_overrides("model.align=bilinear,eval.crop_size=[64, 64],x={a: 1, b: 2}") == [
        "model.align=bilinear",
        "eval.crop_size=[64, 64]",
        "x={a: 1, b: 2}",
    ]
    cfg_path = write_cfg(tmp_path / "cfg.yaml", tiny_cfg(syn_root))
    rc = main(
        [
            "bench",
            "train",
            "--config",
            str(cfg_path),
            "--iters",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--compare",
            "model.align=bilinear,model.context=none",
            "--json",
            str(tmp_path / "bench.json"),
        ]
    )
    assert rc == 0
    table = capsys.readouterr().out
    assert "MFU" in table and "model.align=bilinear,model.context=none" in table
    res = json.loads((tmp_path / "bench.json").read_text())
    base, other = res["variants"]
    assert base["variant"] == "config" and base["batch_size"] == 4 and base["crop_size"] == [32, 32]
    for r in (base, other):
        assert r["images_per_s"] > 0 and 0 < r["mfu"]
        assert r["train_flops_per_s"] == pytest.approx(
            3 * r["forward_flops_per_image"] * r["images_per_s"]
        )
    # SRM + CRM cost more FLOPs than bilinear + a 1x1 context
    assert base["forward_flops_per_image"] > other["forward_flops_per_image"]
    assert base["flops_counted"].startswith("training-mode")
    assert main(["bench", "train", "--config", str(cfg_path), "--compare", "model.alig=x"]) == 2
    assert "unknown key 'model.alig'" in capsys.readouterr().err


def test_freeze_backbone_trains_the_decoder_only(syn_root, tmp_path, one_thread):
    cfg = tiny_cfg(syn_root, "train.freeze_backbone=true")
    from srcr.train import init_model

    start = {k: v.clone() for k, v in init_model(cfg).state_dict().items()}
    train(cfg, tmp_path / "f", progress=False)
    end = final_state(tmp_path / "f")
    backbone = [k for k in start if k.startswith("backbone.")]
    assert backbone and any("running_mean" in k for k in backbone)
    for k in backbone:  # weights and BN statistics: the initial (pretrained) ones
        assert torch.equal(start[k], end[k]), k
    assert any(not torch.equal(start[k], end[k]) for k in start if k.startswith("decoder."))
