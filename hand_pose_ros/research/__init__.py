"""Research and tooling that the product does not import: the synthetic data engine
(:mod:`.synth`), the training loop (:mod:`.training`), the trainers, training data, losses
and evaluation of the detector and handedness classifiers (:mod:`.detection`) and of the
mesh estimator (:mod:`.estimation`). Run through ``hand-teleop synth`` / ``train``."""
