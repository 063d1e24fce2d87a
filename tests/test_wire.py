"""The /ws JSON format: any browser frame is a request or an error, never an exception."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from webchat.wire.json import Ping, SendRequest, parse_client_frame


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_any_browser_frame_is_a_request_or_an_error_never_an_exception(raw: str | bytes) -> None:
    result = parse_client_frame(raw, 1 << 20)
    assert isinstance(result, SendRequest | Ping | str)


@given(
    st.dictionaries(
        st.sampled_from(["type", "text", "to", "x"]),
        st.one_of(st.none(), st.text(max_size=20), st.integers(), st.lists(st.integers())),
    )
)
def test_any_json_object_is_a_request_or_an_error(frame: dict[str, object]) -> None:
    result = parse_client_frame(json.dumps(frame), 1 << 20)
    if isinstance(result, SendRequest):
        assert frame["type"] == "send" and isinstance(frame["text"], str)
    else:
        assert result
