"""GMACs and parameters of every estimator variant (seed 002 Tables 1 and 2), counted by ptflops.

Counting convention. seed 002 used ``flops-counter.pytorch`` (ptflops) of 2021, which
charged a transposed convolution per *output* position (kernel x C_in x C_out / groups
MACs at each output pixel). ptflops >= 0.7.3 charges it per *input* position (the true
MAC count, 4x less for a 4x4 stride-2 deconvolution). ``gmacs`` uses the 2021 rule (a
custom ptflops hook), so it is comparable with the paper; ``gmacs_true`` uses ptflops
0.7.5's own rule. Both count modules only (``count_functional=False``), as ptflops did
in 2021: soft-argmax, means and the Gaussian heatmap rendering are not charged.
"""

from __future__ import annotations

import argparse
import io

from hand_pose_ros.benchmarks.utils import machine_info
from hand_pose_ros.estimation.registry import create_mesh_net, estimator_config, list_estimators

#: seed 002 Table 2 (GMACs, M params) of the variants that reproduce it.
PAPER_TABLE2: dict[str, tuple[float, float]] = {
    "i2l_baseline": (29.06, 136.63),
    "lite_effb0": (15.66, 66.65),
    "lite_effb0_dw": (5.43, 51.71),
    "lite_effb0_mbconv": (5.53, 52.40),
    "lite_effb0_dwse": (3.75, 51.49),
}
#: seed 002 Table 1: per-module GMACs of the original I2L MeshNet.
PAPER_TABLE1: dict[str, float] = {
    "pose_backbone": 5.38,
    "pose_net": 7.55,
    "pose2feat": 3.32,
    "mesh_backbone": 5.22,
    "mesh_net": 7.59,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=None, help="variants (default: all)")
    parser.add_argument(
        "--input-size", type=int, default=256, help="square input for every variant (Table 2: 256)"
    )
    parser.add_argument("--num-vertices", type=int, default=778, help="mesh vertices")


def _deconv_per_output_hook(module, inputs, output) -> None:
    """ptflops hook charging a transposed conv per output position (ptflops 2021 rule)."""
    import numpy as np

    per_position = (
        int(np.prod(module.kernel_size))
        * module.in_channels
        * (module.out_channels // module.groups)
    )
    macs = per_position * output.shape[0] * int(np.prod(output.shape[2:]))
    if module.bias is not None:
        macs += int(np.prod(output.shape))
    module.__flops__ += int(macs)


def count_macs(model, input_size: int, paper_rule: bool = True) -> tuple[int, dict[str, int]]:
    """MACs of one forward pass at batch 1, total and per top-level child module.

    Works on a model built on the ``meta`` device (shapes only, no compute), which is
    how :func:`run` counts: the hooks need only tensor shapes.

    Args:
        model: an :class:`~hand_pose_ros.estimation.i2l.I2LMeshNet`.
        input_size: square input side, pixels.
        paper_rule: charge transposed convs per output position (seed 002's ptflops).

    Returns:
        (total MACs, {child name: MACs}).
    """
    import torch
    from ptflops import pytorch_engine as pe
    from torch import nn

    pe.CUSTOM_MODULES_MAPPING = {nn.ConvTranspose2d: _deconv_per_output_hook} if paper_rule else {}
    counted = pe.add_flops_counting_methods(model)
    counted.eval()
    counted.start_flops_count(ost=io.StringIO(), verbose=False, ignore_list=[])
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            counted(torch.zeros(1, 3, input_size, input_size, device=device))
        per_module = {
            name: sum(m.__flops__ for m in child.modules() if pe.is_supported_instance(m))
            for name, child in model.named_children()
        }
    finally:
        counted.stop_flops_count()
        pe.CUSTOM_MODULES_MAPPING = {}
    return sum(per_module.values()), per_module


def run(args: argparse.Namespace) -> dict:
    import torch

    names = args.models or list_estimators()
    rows = []
    for name in names:
        with torch.device("meta"):  # shapes only: no weight init, no arithmetic
            model = create_mesh_net(
                name, input_size=args.input_size, num_vertices=args.num_vertices
            )
        macs, per_module = count_macs(model, args.input_size, paper_rule=True)
        true_macs, _ = count_macs(model, args.input_size, paper_rule=False)
        params = sum(p.numel() for p in model.parameters())
        row = {
            "name": name,
            "input_size_px": args.input_size,
            "num_joints": model.cfg.num_joints,
            "num_vertices": model.cfg.num_vertices,
            "gmacs": macs / 1e9,
            "gmacs_true": true_macs / 1e9,
            "params_m": params / 1e6,
        }
        row.update({f"gmacs_{k}": v / 1e9 for k, v in per_module.items()})
        native = estimator_config(name).input_size
        if native != args.input_size:  # the variant's own input size (CPU candidates)
            with torch.device("meta"):
                native_model = create_mesh_net(name, num_vertices=args.num_vertices)
            row["native_input_size_px"] = native
            row["gmacs_native"] = count_macs(native_model, native, paper_rule=True)[0] / 1e9
            row["params_m_native"] = sum(p.numel() for p in native_model.parameters()) / 1e6
        paper = PAPER_TABLE2.get(name)
        if paper is not None and args.input_size == 256 and args.num_vertices == 778:
            row["paper_gmacs"], row["paper_params_m"] = paper
            row["gmacs_rel_err"] = row["gmacs"] / paper[0] - 1.0
            row["params_rel_err"] = row["params_m"] / paper[1] - 1.0
            if name == "i2l_baseline":
                row.update({f"paper_gmacs_{k}": v for k, v in PAPER_TABLE1.items()})
        rows.append(row)
    return {"bench": "flops", "machine": machine_info(), "rows": rows}
