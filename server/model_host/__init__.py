"""The local model host: the subset of TensorFlow Serving's gRPC API the gateway uses.

Real TF Serving serves the models in production; its binary cannot be installed on development
and CI machines, so this package stands in for it there. It speaks TF Serving's own protos
(`tensorflow.serving.PredictionService` Predict and GetModelMetadata, `ModelService`
GetModelStatus and HandleReloadConfigRequest), reads the same `models.config`, loads SavedModels
with TensorFlow, polls for new versions (loading a new one before unloading the old) and answers
errors with TF Serving's codes and messages.

    host, port = create_server(Path("serving_config/models.config"), port=8500)
    ...
    host.stop(grace=5).wait()

or `python -m server.model_host --port=8500 --model_config_file=serving_config/models.config`.
"""

from server.model_host.options import HostOptions
from server.model_host.server import ModelHost, StartupError, create_server

__all__ = ["HostOptions", "ModelHost", "StartupError", "create_server"]
