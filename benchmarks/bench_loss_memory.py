"""Peak memory and time of the plain vs chunked distillation loss (forward + backward) on CPU.

Each measurement runs in a fresh Python subprocess so that peak resident memory (ru_maxrss) is
that run's alone. A baseline subprocess only imports torch and allocates the inputs (student
logits with requires_grad, teacher logits, labels); a variant's figure is its peak RSS minus the
baseline's, i.e. what the loss's forward + backward adds on top of the inputs (the gradient of
the student logits included). tracemalloc cannot see torch's allocations, hence RSS.

    python benchmarks/bench_loss_memory.py                      # 1 x 4096 tokens, V = 49152
    python benchmarks/bench_loss_memory.py --batch 4 --seq 1024 --kinds jsd --chunk-sizes 512

Writes benchmarks/results/loss_memory.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "loss_memory.json"


def _maxrss_bytes() -> int:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def worker(args: argparse.Namespace) -> None:
    """Run one variant in this (fresh) process and print a JSON line with its figures."""
    import torch

    sys.path.insert(0, str(ROOT))
    from distillation.losses import DistillationLoss, kd_divergence

    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    # The same small warm-up in every worker, baseline included, so one-off costs (autograd
    # engine threads, kernel code pages, allocator arenas) cancel out of the difference.
    small = torch.randn(1, 16, args.vocab, dtype=dtype, requires_grad=True)
    small_labels = torch.randint(0, args.vocab, (1, 16))
    module = DistillationLoss(kd_ratio=0.5, temperature=2.0)
    for chunk in (None, 8):
        module.chunk_size = chunk
        module(small, small_labels, teacher_logits=small.detach())["loss"].backward()
        for kind in ("forward_kl", "reverse_kl", "jsd"):
            kd_divergence(
                small, small.detach() + 1, small_labels, kind=kind, chunk_size=chunk
            ).backward()
    del small, small_labels, module
    shape = (args.batch, args.seq, args.vocab)
    student = torch.randn(shape, dtype=dtype).requires_grad_(True)  # (B, T, V)
    teacher = torch.randn(shape, dtype=dtype)  # (B, T, V)
    labels = torch.randint(0, args.vocab, shape[:2])  # (B, T), every token is an answer token
    inputs_rss = _maxrss_bytes()
    if args.variant == "baseline":
        print(json.dumps({"peak_rss": inputs_rss, "inputs_rss": inputs_rss}))
        return

    chunk = None if args.variant == "plain" else int(args.variant.removeprefix("chunked-"))
    if args.kind == "blend":
        module = DistillationLoss(kd_ratio=0.5, temperature=2.0, chunk_size=chunk)

        def step() -> None:
            module(student, labels, teacher_logits=teacher)["loss"].backward()
    else:

        def step() -> None:
            kd_divergence(
                student, teacher, labels, kind=args.kind, temperature=2.0, chunk_size=chunk
            ).backward()

    times = []
    for i in range(args.repeats):
        student.grad = None
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        if i == 0:
            peak = _maxrss_bytes()  # later repeats reuse the same memory; the first sets the peak
    print(json.dumps({"peak_rss": peak, "inputs_rss": inputs_rss, "times_s": times}))


def run_variant(args: argparse.Namespace, variant: str, kind: str) -> dict:
    """Run one variant in a subprocess and return its parsed JSON line."""
    cmd = [sys.executable, __file__, "--worker", "--variant", variant, "--kind", kind]
    cmd += ["--batch", str(args.batch), "--seq", str(args.seq), "--vocab", str(args.vocab)]
    cmd += ["--dtype", args.dtype, "--repeats", str(args.repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant}/{kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments; as parent, run every variant in its own subprocess and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--kinds",
        default="forward_kl,jsd,blend",
        help="comma list of forward_kl, reverse_kl, jsd, blend (CE + forward KL)",
    )
    parser.add_argument("--chunk-sizes", default="1024,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    import torch

    sys.path.insert(0, str(ROOT))
    from data_loaders.io import atomic_write_json

    mib = 1024 * 1024
    baseline = run_variant(args, "baseline", "forward_kl")
    variants = ["plain", *(f"chunked-{c}" for c in args.chunk_sizes.split(","))]
    results = []
    for kind in args.kinds.split(","):
        plain_extra = None
        for variant in variants:
            got = run_variant(args, variant, kind)
            extra = got["peak_rss"] - baseline["peak_rss"]
            plain_extra = extra if variant == "plain" else plain_extra
            row = {
                "kind": kind,
                "variant": variant,
                "peak_rss_mib": round(got["peak_rss"] / mib, 1),
                "extra_peak_rss_mib": round(extra / mib, 1),
                "extra_vs_plain": round(extra / plain_extra, 3),
                "time_s_median": round(statistics.median(got["times_s"]), 3),
                "times_s": [round(t, 3) for t in got["times_s"]],
            }
            results.append(row)
            print(
                f"{kind:>10} {variant:>13}: +{row['extra_peak_rss_mib']:8.1f} MiB "
                f"({row['extra_vs_plain']:.1%} of plain), {row['time_s_median']:.2f} s"
            )

    element = torch.empty((), dtype=getattr(torch, args.dtype)).element_size()
    report = {
        "what": "peak RSS added by loss forward+backward over a baseline holding the inputs",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "shape": {"batch": args.batch, "seq": args.seq, "vocab": args.vocab},
        "tokens": args.batch * args.seq,
        "dtype": args.dtype,
        "temperature": 2.0,
        "one_logits_tensor_mib": round(args.batch * args.seq * args.vocab * element / mib, 1),
        "baseline_peak_rss_mib": round(baseline["peak_rss"] / mib, 1),
        "repeats": args.repeats,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "results": results,
    }
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
