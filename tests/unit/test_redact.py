"""Credentials echoed in an answer body are removed before anything reads it."""

from __future__ import annotations

import json

from bulkscan.dsc._redact import REDACTED, Redactor, redact_answer, secrets_of
from bulkscan.dsc.credentials import AkSk, Token

AUTH = (
    "SDK-HMAC-SHA256 Access=AKEXAMPLE0123, SignedHeaders=content-type;host;x-sdk-date, "
    "Signature=" + "ab" * 32
)


def test_token_and_its_json_escaped_form_are_removed() -> None:
    token = "MIIabc/def+ghi==" * 4
    body = json.dumps({"error_msg": f"bad token {token}"}).replace("/", "\\/").encode()
    secrets = secrets_of(Token(token), {"X-Auth-Token": token})
    cleaned = redact_answer(body, secrets).decode()
    assert "MIIabc" not in cleaned and REDACTED in cleaned
    assert json.loads(cleaned)["error_msg"] == f"bad token {REDACTED}"


def test_authorization_its_signature_and_the_key_pair_are_removed() -> None:
    creds = AkSk("AKEXAMPLE0123", "secret-key-value-0123", security_token="sts-token-0123456")
    secrets = secrets_of(creds, {"Authorization": AUTH, "X-Security-Token": "sts-token-0123456"})
    for echoed in (AUTH, "ab" * 32, "AKEXAMPLE0123", "secret-key-value-0123", "sts-token-0123456"):
        cleaned = redact_answer(f"you sent {echoed}!".encode(), secrets)
        assert cleaned == f"you sent {REDACTED}!".encode()


def test_an_answer_without_a_secret_is_returned_unchanged() -> None:
    body = b'{"id": "123", "msg": "ok"}'
    assert redact_answer(body, secrets_of(AkSk("AKEXAMPLE0123", "s" * 20), {})) is body


def test_the_redactor_cleans_an_answer_as_redact_answer_does() -> None:
    creds = AkSk("AKEXAMPLE0123", "secret/key/value/0123", security_token="sts-token-0123456")
    redactor = Redactor(creds)
    headers = {"Authorization": AUTH, "X-Security-Token": "sts-token-0123456", "Host": "h"}
    bodies = [
        b'{"id": "123", "msg": "ok"}',
        f"you sent {AUTH}".encode(),
        b"signature " + b"ab" * 32,
        b'{"sk": "secret\\/key\\/value\\/0123"}',
        b"key AKEXAMPLE0123 and token sts-token-0123456",
        b"\xff\xfe not utf-8 secret/key/value/0123",
    ]
    for body in bodies:
        expected = redact_answer(body, secrets_of(creds, headers))
        assert redactor.answer(body, headers) == expected
    assert redactor.answer(bodies[0], headers) is bodies[0]
    token = Token("MIIabc/def+ghi==" * 4)
    echoed = json.dumps({"error_msg": token.token}).replace("/", "\\/").encode()
    assert Redactor(token).answer(echoed, {}) == redact_answer(echoed, secrets_of(token, {}))
    assert REDACTED.encode() in Redactor(token).answer(echoed, {})


def test_the_redactor_finds_every_part_of_headers_it_was_not_built_with() -> None:
    """An answer is searched for each secret header's value and parts, whoever signed it: an
    access key other than the credentials', an unsigned value, a short signature."""
    creds = AkSk("AKEXAMPLE0123", "secret-key-value-0123")
    redactor = Redactor(creds)
    other = AUTH.replace("AKEXAMPLE0123", "AKOTHER456789")
    short = "SDK-HMAC-SHA256 Access=AKEXAMPLE0123, SignedHeaders=host, Signature=abc"
    cases = [
        ({"Authorization": other}, b"you sent AKOTHER456789"),
        ({"Authorization": other}, other.encode()),
        ({"authorization": short}, f"echo: {short}".encode()),
        ({"X-Auth-Token": "tok/en/value/0123"}, b'{"t": "tok\\/en\\/value\\/0123"}'),
        ({"Authorization": AUTH}, json.dumps({"m": AUTH}).encode()),
    ]
    for headers, body in cases:
        cleaned = redactor.answer(body, headers)
        assert cleaned == redact_answer(body, secrets_of(creds, headers))
        assert REDACTED.encode() in cleaned, (headers, body)
