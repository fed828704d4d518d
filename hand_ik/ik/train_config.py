"""Hyper-parameters of the IK net's training (a leaf module: no torch at import)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IKTrainConfig:
    """Hyper-parameters of ``hand-teleop train ik`` (defaults: the shipped weights)."""

    rotation: str = "bio"
    """``bio`` (23 DoF, ours) or ``pose45`` (the paper's 45-parameter baseline)."""
    num_samples: int = 60_000
    """Training samples (poses x shapes)."""
    data_seed: int = 0
    """Seed of the training data; evaluation data uses seeds >= 1000."""
    epochs: int = 40
    lr: float = 1e-3
    lr_milestones: list[int] = field(default_factory=lambda: [30, 35])
    """Epochs where the learning rate drops 10x (seed 002: 30 and 35 of 40)."""
    batch_size: int = 256
    hidden: int = 512
    noise_max_m: float = 0.008
    """Per-sample joint noise std drawn uniformly from [0, noise_max_m]."""
    joint_loss_cm: float = 1.0
    """Weight of the re-posed keypoint L1 loss, per centimetre."""
    seed: int = 0
    """Seed of initialisation, shuffling and noise."""

    def __post_init__(self) -> None:
        if self.rotation not in ("bio", "pose45"):
            raise ValueError(f"rotation must be 'bio' or 'pose45', got {self.rotation!r}")
        for name in ("num_samples", "epochs", "batch_size", "hidden"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.data_seed >= 1000:
            raise ValueError("data_seed must be < 1000 (seeds >= 1000 are evaluation data)")
        if self.lr <= 0 or self.noise_max_m < 0:
            raise ValueError("lr must be > 0 and noise_max_m >= 0")
