"""TLS through the real gateway: its port over TLS with a certificate read again when the files
change, mutual TLS, the plaintext health-only port for probes, and TLS to the backend."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.server import Gateway, create_server
from server.gateway.settings import GatewaySettings
from tests.gateway.conftest import gateway_settings
from tests.support.backend_proxy import BackendProxy
from tests.support.certificates import Authority, make_authority

PHOTO = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"


@pytest.fixture(scope="module")
def authorities(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Authority]:
    folder = tmp_path_factory.mktemp("tls")
    return make_authority(folder, "first"), make_authority(folder, "second")


def request() -> pb.ClassifyRequest:
    return pb.ClassifyRequest(encoded=PHOTO.read_bytes(), model=pb.ModelSelector(name="cnn"))


def trusting(authority: Authority, *, client: bool = False) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=authority.ca.read_bytes(),
        private_key=authority.client_key.read_bytes() if client else None,
        certificate_chain=authority.client_cert.read_bytes() if client else None,
    )


async def classify(port: int, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    target = f"localhost:{port}"
    channel = (
        grpc.aio.secure_channel(target, credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(target)
    )
    async with channel:
        try:
            answer = await classifier_pb2_grpc.ClassifierStub(channel).Classify(
                request(), timeout=10
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
    assert len(answer.scores) == 10
    return grpc.StatusCode.OK


@pytest.fixture
async def tls_files(tmp_path: Path, authorities: tuple[Authority, Authority]) -> tuple[Path, Path]:
    first, _ = authorities
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first.server_cert, cert)
    shutil.copy(first.server_key, key)
    return cert, key


async def started(settings: GatewaySettings) -> AsyncIterator[Gateway]:
    gateway = await create_server(settings)
    try:
        yield gateway
    finally:
        await gateway.stop(0)


async def test_tls_with_a_rotated_certificate_and_a_plaintext_health_port(
    backend_port: int,
    models_config: Path,
    tls_files: tuple[Path, Path],
    authorities: tuple[Authority, Authority],
) -> None:
    first, second = authorities
    cert, key = tls_files
    settings = gateway_settings(
        backend_port, models_config, tls_cert_file=cert, tls_key_file=key, health_port=0
    )
    async for gateway in started(settings):
        assert await classify(gateway.port, trusting(first)) == grpc.StatusCode.OK
        assert await classify(gateway.port, None) == grpc.StatusCode.UNAVAILABLE  # plaintext
        assert await classify(gateway.port, trusting(second)) == grpc.StatusCode.UNAVAILABLE

        assert gateway.health_port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.health_port}") as probe:
            reply = await health_pb2_grpc.HealthStub(probe).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert await classify(gateway.health_port, None) == grpc.StatusCode.UNIMPLEMENTED

        # Rotation: new files, no restart; the next handshake uses them.
        shutil.copy(second.server_key, key)
        shutil.copy(second.server_cert, cert)
        assert await classify(gateway.port, trusting(second)) == grpc.StatusCode.OK
        assert await classify(gateway.port, trusting(first)) == grpc.StatusCode.UNAVAILABLE
        # A half-written rotation keeps the certificate in use.
        cert.write_text("not a certificate")
        assert await classify(gateway.port, trusting(second)) == grpc.StatusCode.OK


async def test_mutual_tls_needs_a_client_certificate_from_the_client_ca(
    backend_port: int,
    models_config: Path,
    tls_files: tuple[Path, Path],
    authorities: tuple[Authority, Authority],
) -> None:
    first, second = authorities
    cert, key = tls_files
    settings = gateway_settings(
        backend_port,
        models_config,
        tls_cert_file=cert,
        tls_key_file=key,
        tls_client_ca_file=first.ca,
        health_port=0,
    )
    async for gateway in started(settings):
        assert await classify(gateway.port, trusting(first, client=True)) == grpc.StatusCode.OK
        assert await classify(gateway.port, trusting(first)) == grpc.StatusCode.UNAVAILABLE
        other_client = grpc.ssl_channel_credentials(
            root_certificates=first.ca.read_bytes(),
            private_key=second.client_key.read_bytes(),
            certificate_chain=second.client_cert.read_bytes(),
        )
        assert await classify(gateway.port, other_client) == grpc.StatusCode.UNAVAILABLE


async def test_the_backend_over_tls(
    backend_port: int, models_config: Path, authorities: tuple[Authority, Authority]
) -> None:
    first, _ = authorities
    terminating = BackendProxy(f"127.0.0.1:{backend_port}", rule=lambda model: None)
    port = await terminating.start(
        grpc.ssl_server_credentials(
            [(first.server_key.read_bytes(), first.server_cert.read_bytes())]
        )
    )
    try:
        secure = gateway_settings(port, models_config, backend_tls_ca_file=first.ca)
        async for gateway in started(secure):
            assert await classify(gateway.port, None) == grpc.StatusCode.OK
        plain = gateway_settings(port, models_config, default_timeout_s=2.0)
        async for gateway in started(plain):
            assert await classify(gateway.port, None) == grpc.StatusCode.UNAVAILABLE
    finally:
        await terminating.stop()


def test_tls_files_come_in_pairs(models_config: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both tls_cert_file and tls_key_file"):
        gateway_settings(0, models_config, tls_cert_file=tmp_path / "tls.crt")
    with pytest.raises(ValueError, match="mutual TLS"):
        gateway_settings(0, models_config, tls_client_ca_file=tmp_path / "ca.crt")
