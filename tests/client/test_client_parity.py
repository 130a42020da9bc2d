"""`Client` and `AsyncClient` expose the same methods, with the same parameters."""

from __future__ import annotations

import inspect

from imgclf_client import AsyncClient, Client

SYNC_ONLY = {"__enter__", "__exit__"}
ASYNC_ONLY = {"__aenter__", "__aexit__"}


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") or name in SYNC_ONLY | ASYNC_ONLY
    }


def test_same_methods() -> None:
    assert public_methods(Client) - SYNC_ONLY == public_methods(AsyncClient) - ASYNC_ONLY
    assert {"classify", "list_models", "get_model", "close"} <= public_methods(Client)


def test_same_signatures() -> None:
    for name in public_methods(Client) - SYNC_ONLY:
        assert inspect.signature(getattr(Client, name)) == inspect.signature(
            getattr(AsyncClient, name)
        ), name


def test_async_methods_are_coroutines() -> None:
    for name in public_methods(AsyncClient):
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name
    for name in public_methods(Client):
        assert not inspect.iscoroutinefunction(getattr(Client, name)), name


async def test_context_managers(target: str) -> None:
    with Client(target) as client:
        models = client.list_models()
    async with AsyncClient(target) as async_client:
        assert await async_client.list_models() == models
