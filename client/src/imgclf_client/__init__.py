"""Typed Python client for the imgclf image-classification gateway (gRPC, no TensorFlow).

    from imgclf_client import Client

    with Client("localhost:50051", timeout=5.0) as client:
        result = client.classify("cat.png", model="cnn", label="stable", top_k=3)
        print(result.model, result.version, result.top.name, result.top.probability)

`AsyncClient` has the same methods as coroutines. Every method takes `timeout=`: seconds
for this call, None for no deadline; left out, the client's default (10 s) applies.
Calls that end UNAVAILABLE are retried by gRPC itself (service config, up to 4 attempts
within the one deadline); no other status is retried.

Results are frozen dataclasses: `Classification` (of `ClassScore`), `ModelStatus` (of
`ModelVersion`) and `ModelInfo`.

Experiments: `classify(image, experiment="cnn-ab", routing_key="user-7")` routes through an
experiment (the result names the `arm`); `feedback(result.request_id, true_class)` attaches
ground truth; `experiment_report(name)` gives per-arm figures and the verdict;
`compare(image, ["cnn:1", "cnn@canary"])` runs one image through several models. With
`admin_token=`, `create_experiment`, `update_experiment` and `end_experiment` change them.

Errors form one tree rooted at `ImgclfError`:

    ImgclfError
    ├── InvalidInput             bad arguments, caught before any call (also a ValueError)
    └── ServerError              the call ended with a gRPC status; keeps `code` and `details`
        ├── InvalidArgument      INVALID_ARGUMENT
        ├── NotFound             NOT_FOUND
        ├── ResourceExhausted    RESOURCE_EXHAUSTED
        ├── FailedPrecondition   FAILED_PRECONDITION
        ├── Unavailable          UNAVAILABLE (after the retries)
        ├── DeadlineExceeded     DEADLINE_EXCEEDED
        ├── Cancelled            CANCELLED
        ├── Unauthenticated      UNAUTHENTICATED
        ├── PermissionDenied     PERMISSION_DENIED
        ├── Unimplemented        UNIMPLEMENTED
        └── Internal             INTERNAL

Any other status code raises a plain `ServerError`.
"""

from ._async import AsyncClient
from ._config import USE_CLIENT_DEFAULT, UseClientDefault
from ._exceptions import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    ImgclfError,
    Internal,
    InvalidArgument,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from ._experiment_types import (
    AnalysisSettings,
    ArmComparison,
    ArmReport,
    ClassCount,
    CompareAnswer,
    Experiment,
    ExperimentArm,
    ExperimentReport,
    FeedbackResult,
    Latency,
    ModelRef,
    ShadowArm,
    ShadowReport,
    Verdict,
)
from ._images import ImageInput
from ._plain import to_plain
from ._sync import Client
from ._types import Classification, ClassScore, ModelInfo, ModelStatus, ModelVersion

__all__ = [
    "USE_CLIENT_DEFAULT",
    "AnalysisSettings",
    "ArmComparison",
    "ArmReport",
    "AsyncClient",
    "Cancelled",
    "ClassCount",
    "ClassScore",
    "Classification",
    "Client",
    "CompareAnswer",
    "DeadlineExceeded",
    "Experiment",
    "ExperimentArm",
    "ExperimentReport",
    "FailedPrecondition",
    "FeedbackResult",
    "ImageInput",
    "ImgclfError",
    "Internal",
    "InvalidArgument",
    "InvalidInput",
    "Latency",
    "ModelInfo",
    "ModelRef",
    "ModelStatus",
    "ModelVersion",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "ServerError",
    "ShadowArm",
    "ShadowReport",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UseClientDefault",
    "Verdict",
    "to_plain",
]
