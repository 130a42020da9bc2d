"""Names of the serving contract every exported model follows (no TensorFlow import).

`serving_default`: input `images` (uint8 [batch, height, width, 3]) -> `probabilities`
(float32 [batch, classes]). `metadata`: no inputs -> `class_names` (string [classes]) and
`input_size` (int32 [3]: height, width, channels). The gateway and the model host read these
names from here; `training.export` writes them.

Beside the SavedModel, `assets.extra/` holds what the training run recorded (read by the
evaluation report) and TF Serving's warmup requests.
"""

SERVING_SIGNATURE = "serving_default"
METADATA_SIGNATURE = "metadata"
INPUT_KEY = "images"
OUTPUT_KEY = "probabilities"
CLASS_NAMES_KEY = "class_names"
INPUT_SIZE_KEY = "input_size"

TRAINING_RECORD_FILE = "assets.extra/training.json"
HISTORY_FILE = "assets.extra/history.csv"
