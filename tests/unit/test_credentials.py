"""Credentials resolve in the documented order and never show a secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bulkscan.dsc.credentials import (
    AkSk,
    Token,
    auth_method,
    default_project_id,
    mask,
    resolve_credentials,
)
from bulkscan.errors import CredentialsError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

AK = "AKEXAMPLE0000000890A"
SK = "sk-very-secret-0123456789abcdefghijklmnop"
ST = "security-token-very-secret-value"
TOKEN = "MIIIAm-iam-token-very-secret"
ENV_PAIR = {"HUAWEICLOUD_SDK_AK": "AKENVIRONMENT0001111", "HUAWEICLOUD_SDK_SK": "env-secret"}


def test_explicit_arguments_win_over_environment() -> None:
    creds = resolve_credentials(access_key=AK, secret_key=SK, env=ENV_PAIR | {"X": "1"})
    assert creds == AkSk(AK, SK)


def test_environment_pair_with_security_token() -> None:
    env = ENV_PAIR | {"HUAWEICLOUD_SDK_SECURITY_TOKEN": ST, "BULKSCAN_AUTH_TOKEN": TOKEN}
    creds = resolve_credentials(env=env)
    assert creds == AkSk("AKENVIRONMENT0001111", "env-secret", ST)
    assert auth_method(creds) == "temporary AK/SK"


def test_token_from_environment_when_no_pair() -> None:
    creds = resolve_credentials(env={"BULKSCAN_AUTH_TOKEN": f"  {TOKEN}\n"})
    assert creds == Token(TOKEN)
    assert auth_method(creds) == "IAM token"


def test_token_file_is_explicit_and_wins_over_environment(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n", "utf-8")
    assert resolve_credentials(token_file=str(path), env=ENV_PAIR) == Token(TOKEN)


def test_pair_and_token_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN, "utf-8")
    with pytest.raises(CredentialsError, match="not both"):
        resolve_credentials(access_key=AK, secret_key=SK, token_file=str(path), env={})


def test_blank_values_count_as_absent() -> None:
    env = {"HUAWEICLOUD_SDK_AK": " ", "HUAWEICLOUD_SDK_SK": "", "BULKSCAN_AUTH_TOKEN": TOKEN}
    assert resolve_credentials(access_key="", env=env) == Token(TOKEN)


@pytest.mark.parametrize(
    ("kwargs", "env", "expected"),
    [
        ({"access_key": AK}, {}, "without its secret key"),
        ({"secret_key": SK}, {}, "without its access key"),
        ({"security_token": ST}, {}, "without an access key"),
        ({}, {"HUAWEICLOUD_SDK_AK": AK}, "in the environment without its secret key"),
        ({}, {"HUAWEICLOUD_SDK_SK": SK}, "in the environment without its access key"),
        ({}, {"HUAWEICLOUD_SDK_SECURITY_TOKEN": ST}, "without an access key"),
        ({}, {}, "no DSC credentials found"),
    ],
)
def test_missing_or_partial_credentials_say_what_to_do(
    kwargs: dict[str, str], env: dict[str, str], expected: str
) -> None:
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(env=env, **kwargs)
    message = str(info.value)
    assert expected in message
    assert "HUAWEICLOUD_SDK_AK" in message or "not both" in message
    assert SK not in message and ST not in message and AK not in message


def test_partial_pair_names_the_masked_key() -> None:
    with pytest.raises(CredentialsError, match="AKEX…890A"):
        resolve_credentials(access_key=AK, env={})


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "does not exist"), (b"  \n", "is empty"), (b"\xff\xfe\x00bad", "cannot be read")],
)
def test_unusable_token_file(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CredentialsError, match=expected) as info:
        resolve_credentials(token_file=str(path), env={})
    assert str(path) in str(info.value)


def test_oversized_token_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(CredentialsError, match="not an IAM token"):
        resolve_credentials(token_file=str(path), env={})


def test_repr_and_str_never_show_secrets() -> None:
    pair = AkSk(AK, SK, ST)
    token = Token(TOKEN)
    for text in (repr(pair), str(pair), f"{pair}", repr([pair, token]), str(token), repr(token)):
        assert SK not in text and ST not in text and TOKEN not in text and AK not in text
    assert repr(pair) == "AkSk(access_key='AKEX…890A', temporary)"
    assert repr(AkSk(AK, SK)) == "AkSk(access_key='AKEX…890A')"
    assert repr(token) == f"Token(<{len(TOKEN)} characters>)"


@pytest.mark.parametrize(
    ("key", "shown"),
    [(AK, "AKEX…890A"), ("SHORTKEY", "…"), ("", ""), ("ABCDEFGHIJKL", "ABCD…IJKL")],
)
def test_mask(key: str, shown: str) -> None:
    assert mask(key) == shown


def test_auth_method_for_a_permanent_pair() -> None:
    assert auth_method(AkSk(AK, SK)) == "AK/SK"


def test_default_project_id() -> None:
    pid = "0123456789abcdef0123456789abcdef"
    assert default_project_id({"HUAWEICLOUD_SDK_PROJECT_ID": f" {pid} "}) == pid
    assert default_project_id({}) is None
    with pytest.raises(UsageError, match="HUAWEICLOUD_SDK_PROJECT_ID 'NOT-HEX'"):
        default_project_id({"HUAWEICLOUD_SDK_PROJECT_ID": "NOT-HEX"})
