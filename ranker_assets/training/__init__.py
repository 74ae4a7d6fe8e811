"""The multi-task ranker: Delta window -> tensors -> MMoE model -> calibration -> MLflow."""
