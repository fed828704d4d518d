"""The network runtime shared by every network (mesh estimator, detector, handedness,
converted hand networks): torch / ONNX Runtime / TensorRT runners (:mod:`.backends`,
:mod:`.tensorrt_engine`), ONNX export and its cache (:mod:`.export`), shipped weights and
the weight loader (:mod:`.weights`).

Import-light: torch, onnxruntime and tensorrt are imported where a runner is built.
"""
