"""Measure the converted networks against the TFLite reference interpreter (dev tool).

    python -m hand_pose_ros.benchmarks.handnets --images <folder of RGB crops> [--count 20]

Prints one JSON row per network: max abs difference of torch and ONNX Runtime outputs to
TFLite (``ai-edge-litert``, requirements/dev.txt) over the crops (area-resized to the
input), and CPU ms per image at batch 1, 1 thread (median over ``--runs`` after warm-up).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hand_pose_ros.handnets.registry import list_networks, locate_tflite
from hand_pose_ros.handnets.runner import network_runner


def _median_ms(fn, runs: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 2)


def measure(name: str, crops: list[np.ndarray], runs: int) -> dict:
    """Parity and timing row of one network (``crops``: RGB uint8 images)."""
    import cv2
    import torch
    from ai_edge_litert.interpreter import Interpreter

    torch.set_num_threads(1)
    onnx_runner = network_runner(name, "onnx", threads=1)
    torch_runner = network_runner(name, "torch", threads=1)
    s = onnx_runner.input_size
    tfl = Interpreter(model_path=str(locate_tflite(name).path), num_threads=1)
    tfl.allocate_tensors()
    in_index = tfl.get_input_details()[0]["index"]
    out_index = [d["index"] for d in sorted(tfl.get_output_details(), key=lambda d: d["name"])]
    # Output order Identity, Identity_1, ... is our order (checked by the converter's markers).
    diffs = {(b, n): 0.0 for b in ("torch", "onnx") for n in onnx_runner.output_names}
    for crop in crops:
        x = cv2.resize(crop, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        tfl.set_tensor(in_index, x[None])
        tfl.invoke()
        ref = [tfl.get_tensor(i) for i in out_index]
        batch = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        for backend, runner in (("torch", torch_runner), ("onnx", onnx_runner)):
            for out_name, out, r in zip(runner.output_names, runner(batch), ref, strict=True):
                err = float(np.abs(out - r.reshape(out.shape)).max())
                diffs[backend, out_name] = max(diffs[backend, out_name], err)
    batch = np.random.default_rng(0).random((1, 3, s, s), dtype=np.float32)
    nhwc = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))

    def run_tflite() -> None:
        tfl.set_tensor(in_index, nhwc)
        tfl.invoke()

    return {
        "network": name,
        "images": len(crops),
        "max_abs_diff": {f"{b}.{n}": float(f"{v:.3g}") for (b, n), v in diffs.items()},
        "ms_batch1_1thread": {
            "onnxruntime": _median_ms(lambda: onnx_runner(batch), runs),
            "torch": _median_ms(lambda: torch_runner(batch), runs),
            "tflite": _median_ms(run_tflite, runs),
        },
    }


def main(argv: list[str] | None = None) -> int:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="folder of RGB image crops")
    parser.add_argument("--count", type=int, default=20, help="crops used for parity")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per backend")
    parser.add_argument("--networks", nargs="*", default=list_networks())
    args = parser.parse_args(argv)
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    crops = [cv2.imread(str(p))[:, :, ::-1] for p in files[: args.count]]
    for name in args.networks:
        print(json.dumps(measure(name, crops, args.runs)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
