"""Two processes run the same recipe data parallel, unchanged.

`accelerate launch --multi_gpu` starts one process per GPU through torch's launcher; on CPU
`accelerate launch` starts a single process, so the test calls that launcher itself
(``torch.distributed.run``): accelerate then sets up gloo data parallel, the CPU counterpart of
the multi-GPU path.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from distillation.config import load_distill_config
from distillation.history import read_history
from distillation.trainer import run_distillation
from tests.distillation.test_trainer import build_assets

ROOT = Path(__file__).resolve().parents[2]


def test_two_processes_split_each_step_and_export_once(tmp_path):
    assets = build_assets(tmp_path)
    data, teacher = assets["data"], assets["teacher"]
    common = [f"teacher_model_name={teacher}", "student_layers=2", f"data_dir={data}",
              "batch_size=4", "eval_every=2", "eval_samples=4", "eval_max_new_tokens=4",
              "save_every=2", "device=cpu", "learning_rate=1e-3", "warmup_steps=1", "top_k=16",
              "teacher_adaptation.enabled=false"]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "-m", "app.cli", "distill", "-q", *common,
           f"output_dir={tmp_path / 'ddp'}", "max_steps=4"]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = run_distillation(
        load_distill_config(None, [*common, f"output_dir={tmp_path / 'one'}", "max_steps=8"]),
        progress=False,
    )
    ddp_rows = [r for r in read_history(tmp_path / "ddp/training_history.jsonl")
                if r["event"] == "train"]
    one_rows = [r for r in read_history(single.history_path) if r["event"] == "train"]
    # One history row per optimizer step (only the main process writes), and each step of the
    # two-process run consumed the two batches a single process takes in two steps.
    assert [r["step"] for r in ddp_rows] == [1, 2, 3, 4]
    assert [r["tokens"] for r in ddp_rows] == [
        one_rows[i]["tokens"] + one_rows[i + 1]["tokens"] for i in range(0, 8, 2)
    ]
    state = json.loads((tmp_path / "ddp/checkpoints/last/state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 4
    student = load_file(str(tmp_path / "ddp/student/model.safetensors"))
    assert student and all(torch.isfinite(t).all() for t in student.values())
    meta = json.loads((tmp_path / "ddp/student/training_metadata.json").read_text())
    assert meta["steps"] == 4
