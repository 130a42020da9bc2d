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
`ModelVersion`) and `ModelInfo`. Errors form one tree rooted at `ImgclfError`:

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
from ._images import ImageInput
from ._sync import Client
from ._types import Classification, ClassScore, ModelInfo, ModelStatus, ModelVersion

__all__ = [
    "USE_CLIENT_DEFAULT",
    "AsyncClient",
    "Cancelled",
    "ClassScore",
    "Classification",
    "Client",
    "DeadlineExceeded",
    "FailedPrecondition",
    "ImageInput",
    "ImgclfError",
    "Internal",
    "InvalidArgument",
    "InvalidInput",
    "ModelInfo",
    "ModelStatus",
    "ModelVersion",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "ServerError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UseClientDefault",
]
