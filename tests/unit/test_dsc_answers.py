"""DSC's answers as the service writes them: its own 401, 200s that prove nothing, new verdict."""

from __future__ import annotations

import pytest

from bulkscan.dsc.classify import (
    Verdict as V,
)
from bulkscan.dsc.classify import (
    classify_create_answer,
    classify_response,
    dsc_not_enabled,
    error_for,
    is_dsc_code,
)
from bulkscan.errors import ProjectPermanentError, RunFatalError, UntrustedListingError


@pytest.mark.parametrize(
    ("status", "code", "verdict"),
    [
        (401, "dsc.10000009", V.PROJECT_PERMANENT),  # DSC not enabled in the project
        (401, "DSC.10000009", V.PROJECT_PERMANENT),
        (401, "APIGW.0301", V.RUN_FATAL),  # bad signature: stop, never retry
        (401, "APIG.0303", V.RUN_FATAL),  # clock skew
        (401, None, V.RUN_FATAL),
        (400, "dsc.40000011", V.TASK_PERMANENT),
        (404, "dsc.40400001", V.PROJECT_PERMANENT),
    ],
)
def test_401_with_a_dsc_code_fails_the_project_alone(
    status: int, code: str | None, verdict: V
) -> None:
    assert classify_response(status, code) is verdict


@pytest.mark.parametrize(
    ("status", "body_status", "task_id", "verdict"),
    [
        (200, "success", "17", V.CREATED),
        (200, "SUCCESS", "17", V.CREATED),
        (200, None, "17", V.CREATED),  # no status field: the id is the proof
        (200, "success", None, V.AMBIGUOUS),  # no id: may or may not exist
        (200, "failed", "17", V.AMBIGUOUS),
        (200, None, None, V.AMBIGUOUS),  # an HTML page, an empty body
        (201, None, None, V.ACCEPTED),  # being created: the id may come later
    ],
)
def test_a_200_is_created_only_with_an_id_and_success(
    status: int, body_status: str | None, task_id: str | None, verdict: V
) -> None:
    assert classify_create_answer(status, body_status, task_id) is verdict


def test_helpers_and_error_classes() -> None:
    assert is_dsc_code("dsc.10000009") and is_dsc_code("DSC.1") and not is_dsc_code("APIG.0301")
    assert not is_dsc_code(None)
    assert dsc_not_enabled(401, "dsc.10000009") and not dsc_not_enabled(404, "dsc.10000009")
    err = error_for(V.PROJECT_PERMANENT, status=401, code="dsc.10000009", detail="no instance")
    assert isinstance(err, ProjectPermanentError) and "enable it in the console" in str(err)
    assert isinstance(error_for(V.RUN_FATAL, status=401), RunFatalError)
    untrusted = error_for(V.UNTRUSTED, detail="no name")
    assert isinstance(untrusted, UntrustedListingError)
    assert "nothing is sent to this project" in str(untrusted)
