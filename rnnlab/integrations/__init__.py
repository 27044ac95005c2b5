"""Optional tools, each behind one module: MLflow (``mlflow_store``, ``mlflow_logging``),
TensorBoard (``tensorboard``), the hyperparameters trackers log (``hparams``), ONNX/TorchScript
export (``export``). Each fails in one line when its extra is not installed.

May import: ``training``, ``models``, ``tasks``, ``rundir``, ``config``, ``common``.
"""
