"""``%speckle_token`` in a real IPython shell, against the dev server.

Every test also checks that the token never reaches the shell's output, its history
(``In``/``Out``), or any name in the user namespace except inside a ``Credentials``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from speckle_nb.credentials import Credentials
from speckle_nb.devserver import DevServer
from speckle_nb.magics import SpeckleMagics, describe
from speckle_nb.remember import recall
from speckle_nb.session import current_session

MaskCheck = Callable[[str], None]


def run(ip: Any, line: str, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    """Run ``line`` as a cell (kept in history like a person's); its result, stdout, stderr."""
    result = ip.run_cell(line, store_history=True)
    out, err = capsys.readouterr()
    assert result.error_in_exec is None, "an expected failure must not raise"
    return result, out, err


def assert_nowhere(ip: Any, token: str, *texts: str) -> None:
    """The token is in none of ``texts``, the history, or the namespace (outside Credentials)."""
    for text in texts:
        assert token not in text
    for entry in ip.history_manager.input_hist_raw + ip.history_manager.input_hist_parsed:
        assert token not in entry
    for name, value in ip.user_ns.items():
        if isinstance(value, Credentials):
            assert token not in repr(value), name
            assert token not in str(value), name
            continue
        assert token not in repr(value), name


def test_show_when_signed_out_says_how_to_sign_in(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out, err = run(ip, "%speckle_token", capsys)
    assert result.result is None
    assert "Not signed in" in out
    assert "speckle_nb.sign_in()" in out
    assert "%speckle_token set" in out
    assert not err


def test_show_mentions_speckle_token_without_its_value(
    ip: Any,
    pat: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = pat()
    monkeypatch.setenv("SPECKLE_TOKEN", token)
    _, out, err = run(ip, "%speckle_token", capsys)
    assert "SPECKLE_TOKEN is set" in out
    assert "%speckle_token --env SPECKLE_TOKEN" in out
    assert_nowhere(ip, token, out, err)


def test_set_checks_the_token_and_stores_it(
    ip: Any,
    typist: Any,
    devserver: DevServer,
    pat: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = pat()
    typist.answers.append(f"  {token}\n")
    result, out, err = run(ip, "%speckle_token set", capsys)

    assert result.result is None
    assert typist.prompts == [
        f"Personal access token for {devserver.url} (input hidden; Enter to cancel): "
    ]
    assert f"Signed in to {devserver.url} as {devserver.demo_user.name}" in out
    assert "memory only" in out
    creds = current_session().credentials()
    assert creds is not None
    assert (creds.token, creds.source, creds.server_url) == (token, "magic", devserver.url)
    assert creds.user is not None
    assert creds.user.id == devserver.demo_user.id

    # Show: the readable, masked display as the cell's result.
    result, shown, err2 = run(ip, "%speckle_token", capsys)
    assert result.result is creds
    assert f"Signed in to {devserver.url} as {devserver.demo_user.name}" in shown
    assert "typed into %speckle_token set" in shown
    assert creds.masked_token in shown
    assert_nowhere(ip, token, out, err, shown, err2)


def test_creds_equals_the_magic_gives_the_credentials(
    ip: Any, typist: Any, pat: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    token = pat()
    typist.answers.append(token)
    run(ip, "%speckle_token set", capsys)
    _, out, err = run(ip, "creds = %speckle_token", capsys)
    creds = ip.user_ns["creds"]
    assert isinstance(creds, Credentials)
    assert creds.token == token
    assert not out  # an assignment shows nothing
    _, shown, _ = run(ip, "creds", capsys)
    assert creds.masked_token in shown
    assert_nowhere(ip, token, out, err, shown, repr(creds))


def test_set_with_a_server(
    ip: Any,
    typist: Any,
    devserver: DevServer,
    pat: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPECKLE_SERVER_URL", "https://elsewhere.invalid")
    typist.answers.append(pat())
    _, out, _ = run(ip, f"%speckle_token set --server {devserver.url}/", capsys)
    assert devserver.url in typist.prompts[0]
    assert f"Signed in to {devserver.url}" in out
    assert current_session().credentials(devserver.url) is not None


def test_a_bad_token_is_refused_with_the_servers_reason_and_nothing_is_stored(
    ip: Any, typist: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = "0123456789" + "abcdef0123456789abcdef0123456789"
    typist.answers.append(bad)
    _, out, err = run(ip, "%speckle_token set", capsys)
    assert "Your token is not valid." in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert current_session().credentials() is None
    assert_nowhere(ip, bad, out, err)


def test_a_token_without_profile_read_is_kept_without_a_name(
    ip: Any, typist: Any, pat: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    token = pat(scopes=("streams:read",))
    typist.answers.append(token)
    _, out, err = run(ip, "%speckle_token set", capsys)
    assert "as an unknown user" in out
    assert_nowhere(ip, token, out, err)


@pytest.mark.parametrize("answer", [KeyboardInterrupt(), EOFError(), "", "   "])
def test_cancelling_the_prompt_changes_nothing(
    ip: Any, typist: Any, answer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    typist.answers.append(answer)
    _, out, err = run(ip, "%speckle_token set", capsys)
    assert "nothing changed" in out
    assert not err
    assert current_session().credentials() is None


def test_an_unreachable_server_is_one_line(
    ip: Any, typist: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    token = "ab" * 21
    typist.answers.append(token)
    _, _, err = run(ip, f"%speckle_token set --server http://127.0.0.1:{closed_port}", capsys)
    assert "Could not reach" in err
    assert len(err.strip().splitlines()) == 1
    assert token not in err


def test_env_takes_the_token_from_a_variable_and_never_shows_it(
    ip: Any,
    devserver: DevServer,
    pat: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = pat()
    monkeypatch.setenv("MY_SPECKLE_PAT", token)
    _, out, err = run(ip, "%speckle_token --env MY_SPECKLE_PAT", capsys)
    assert f"Signed in to {devserver.url} as {devserver.demo_user.name}" in out
    assert "$MY_SPECKLE_PAT" in out
    creds = current_session().credentials()
    assert creds is not None
    assert (creds.token, creds.source) == (token, "env")
    assert_nowhere(ip, token, out, err)


def test_env_with_a_missing_variable_says_so(
    ip: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_THERE", raising=False)
    _, _out, err = run(ip, "%speckle_token --env NOT_THERE", capsys)
    assert "NOT_THERE is not set" in err
    assert current_session().credentials() is None


def test_clear_signs_out_and_keeps_a_brought_token_valid(
    ip: Any,
    typist: Any,
    devserver: DevServer,
    pat: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = pat()
    typist.answers.append(token)
    run(ip, "%speckle_token set", capsys)
    _, out, err = run(ip, "%speckle_token clear", capsys)
    assert f"Signed out of {devserver.url}" in out
    assert "not revoked" in out
    assert current_session().credentials() is None
    assert devserver.state.validate_token(token) is not None
    _, out2, _ = run(ip, "%speckle_token", capsys)
    assert "Not signed in" in out2
    assert_nowhere(ip, token, out, err, out2)


def test_clear_revoke_revokes_at_the_server(
    ip: Any,
    typist: Any,
    devserver: DevServer,
    pat: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = pat()
    typist.answers.append(token)
    run(ip, "%speckle_token set", capsys)
    _, out, _ = run(ip, "%speckle_token clear --revoke", capsys)
    assert "revoked at the server" in out
    assert devserver.state.validate_token(token) is None


def test_clear_when_signed_out(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, err = run(ip, "%speckle_token clear", capsys)
    assert "nothing to sign out of" in out
    assert not err


def test_remember_keeps_the_token_for_later_kernels_until_clear(
    ip: Any,
    typist: Any,
    devserver: DevServer,
    pat: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = pat()
    typist.answers.append(token)
    _, out, err = run(ip, "%speckle_token set --remember", capsys)
    assert "Saved in" in out
    assert "credentials.json (readable only by you)" in out
    remembered = recall(devserver.url)
    assert remembered is not None
    assert remembered.token == token
    _, out2, _ = run(ip, "%speckle_token clear", capsys)
    assert "remembered copy was removed" in out2
    assert recall(devserver.url) is None
    assert_nowhere(ip, token, out, err, out2)


def test_a_token_typed_into_the_cell_is_refused_and_not_echoed(
    ip: Any, pat: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    token = pat()
    result = ip.run_cell(f"%speckle_token set {token}")  # not kept in history
    out, err = capsys.readouterr()
    assert result.error_in_exec is None
    assert "looks like a token typed into the cell" in err
    assert "revoke it" in err
    assert token not in out + err
    assert current_session().credentials() is None


def test_usage_errors_never_echo_the_words(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, _out, err = run(ip, "%speckle_token frobnicate-Secret-Word", capsys)
    assert "invalid choice" in err
    assert "Secret" not in err
    assert "%speckle_token?" in err
    _, _, err2 = run(ip, "%speckle_token --server", capsys)
    assert "expected one argument" in err2


def test_the_help_lists_every_option() -> None:
    doc = SpeckleMagics.speckle_token.__doc__ or ""
    for option in ("show", "set", "clear", "--server", "--env", "--remember", "--revoke", "--keep"):
        assert option in doc


def test_describe_lists_scopes_when_known() -> None:
    creds = Credentials(
        server_url="https://speckle.example",
        token="f" * 42,
        scopes=("streams:read", "profile:read"),
        source="sign-in",
    )
    text = describe(creds)
    assert "scopes: streams:read, profile:read" in text
    assert "revoked at the server on sign-out" in text
    assert "f" * 42 not in text


def test_a_doc_line_with_a_trailing_comment_works_when_copied(
    ip: Any,
    devserver: DevServer,
    pat: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/usage.md shows `%speckle_token --env MY_SPECKLE_TOKEN  # from an environment
    variable`: pasted as it stands, it signs in (IPython hands the comment to the magic)."""
    token = pat()
    monkeypatch.setenv("MY_SPECKLE_TOKEN", token)
    _, out, err = run(
        ip, "%speckle_token --env MY_SPECKLE_TOKEN  # from an environment variable", capsys
    )
    assert err == ""
    assert f"Signed in to {devserver.url}" in out
    _, out, err = run(ip, "%speckle_token    # who is signed in where", capsys)
    assert err == ""
    assert f"Signed in to {devserver.url}" in out
    assert_nowhere(ip, token, out, err)


def test_sign_out_names_the_variable_the_token_came_from(
    ip: Any,
    devserver: DevServer,
    pat: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = pat()
    monkeypatch.setenv("OTHER_SPECKLE_PAT", token)
    run(ip, "%speckle_token --env OTHER_SPECKLE_PAT", capsys)
    _, out, err = run(ip, "%speckle_token clear", capsys)
    assert "because you brought it (OTHER_SPECKLE_PAT)" in out
    assert "SPECKLE_TOKEN)" not in out
    assert_nowhere(ip, token, out, err)
