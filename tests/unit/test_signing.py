"""The signer reproduces the official SDK signer's vectors exactly, step by step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bulkscan.dsc.signing import (
    Signer,
    canonical_request,
    parse_authorization,
    sign_headers,
    string_to_sign,
)

VECTORS = json.loads((Path(__file__).parent / "signing_vectors.json").read_text("utf-8"))


def _query(vector: dict[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in vector["input"]["query_params"]:
        values = value if isinstance(value, list) else [value]
        pairs.extend((key, str(v)) for v in values)
    return pairs


def _signed(vector: dict[str, Any]) -> dict[str, str]:
    given = vector["input"]
    return sign_headers(
        given["method"],
        given["url"],
        given["headers_given"],
        given["body_utf8"].encode("utf-8"),
        access_key=VECTORS["ak"],
        secret_key=VECTORS["sk"],
        project_id=VECTORS["project_id"],
        security_token=given["security_token"],
        query=_query(vector),
    )


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_canonical_request_and_string_to_sign(vector: dict[str, Any]) -> None:
    headers = _signed(vector)
    unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
    path = vector["input"]["url"].split(VECTORS["host"], 1)[1]
    canonical, _ = canonical_request(
        vector["input"]["method"],
        path,
        _query(vector),
        unsigned,
        vector["input"]["body_utf8"].encode("utf-8"),
    )
    assert canonical == vector["canonical_request"]
    assert string_to_sign(canonical, VECTORS["x_sdk_date"]) == vector["string_to_sign"]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_authorization_header(vector: dict[str, Any]) -> None:
    headers = _signed(vector)
    assert headers["Authorization"] == vector["expected"]["Authorization"]
    for name in ("X-Project-Id", "Host", "X-Sdk-Date"):
        assert headers[name] == vector["expected"]["headers_sent_by_sdk"][name]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_signer_reproduces_the_vectors(vector: dict[str, Any]) -> None:
    """The per-request signer (parts worked out once) gives the SDK's headers exactly."""
    given = vector["input"]
    headers = {k: v for k, v in given["headers_given"].items() if k.lower() != "x-sdk-date"}
    signer = Signer(
        given["method"],
        given["url"],
        headers,
        access_key=VECTORS["ak"],
        secret_key=VECTORS["sk"],
        project_id=VECTORS["project_id"],
        security_token=given["security_token"],
        query=_query(vector),
    )
    signed = signer.sign(given["body_utf8"].encode("utf-8"), VECTORS["x_sdk_date"])
    assert signed["Authorization"] == vector["expected"]["Authorization"]
    assert signed == _signed(vector)


@pytest.mark.parametrize(
    ("method", "url", "headers", "token", "query"),
    [
        ("POST", "https://a.example/v1/p/metadata/task-templates", {"Content-Type": "x"}, None, []),
        ("GET", "http://127.0.0.1:8080/v1/p/x", {"Accept": "application/json"}, "tok", []),
        ("PUT", "https://a.example/v1/p/t/9/status", {"User-Agent": "u", "Z-Extra": " v "}, None,
         [("b", "2"), ("a", "1 2")]),
        ("DELETE", "https://a.example/", {"Under_Score": "left out"}, None, []),
    ],
)  # fmt: skip
def test_signer_equals_sign_headers(
    method: str, url: str, headers: dict[str, str], token: str | None, query: list[Any]
) -> None:
    signer = Signer(
        method, url, headers, access_key="AK0123456789", secret_key="SK-secret",
        project_id="p" * 32, security_token=token, query=query,
    )  # fmt: skip
    for body, date in ((b"", "20261130T010203Z"), ('{"x": "é"}'.encode(), "20261130T235959Z")):
        expected = sign_headers(
            method, url, {**headers, "X-Sdk-Date": date}, body, access_key="AK0123456789",
            secret_key="SK-secret", project_id="p" * 32, security_token=token, query=query,
        )  # fmt: skip
        assert signer.sign(body, date) == expected
        assert list(signer.sign(body, date)) == list(expected)  # same order too


def test_signer_refuses_a_fixed_date() -> None:
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        Signer("GET", "https://a.example/", {"x-sdk-date": "1"}, access_key="a", secret_key="b")


def test_parse_authorization_round_trip() -> None:
    value = VECTORS["vectors"][0]["expected"]["Authorization"]
    parsed = parse_authorization(value)
    assert parsed is not None
    access, names, signature = parsed
    assert access == VECTORS["ak"]
    assert names == ["content-type", "host", "x-project-id", "x-sdk-date"]
    assert len(signature) == 64


@pytest.mark.parametrize(
    "value", ["", "Bearer abc", "SDK-HMAC-SHA256 Access=AK", "SDK-HMAC-SHA256 garbage"]
)
def test_parse_authorization_rejects_malformed(value: str) -> None:
    assert parse_authorization(value) is None
