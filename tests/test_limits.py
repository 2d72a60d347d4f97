"""Oversized requests are refused before any work: 414 for a long query, 431 for big headers."""

from helpers import DETAIL, error_message


def test_long_query_string_is_414(client, make_token):
    response = client.get(f"{DETAIL}?name={'x' * 5000}", headers={"X-Auth-Token": make_token()})
    assert "4096" in error_message(response, 414)


def test_oversized_headers_are_431(client, make_token):
    headers = {"X-Auth-Token": make_token(), "X-Padding": "x" * 9000}
    assert error_message(client.get(DETAIL, headers=headers), 431)
