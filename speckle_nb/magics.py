"""``%speckle_token``: see, set, load or clear the kernel's Speckle token from a cell.

    %load_ext speckle_nb
    %speckle_token                       # who is signed in where (masked token), or how to sign in
    %speckle_token set                   # hidden prompt for a personal access token, validated
    %speckle_token set --server URL
    %speckle_token --env SPECKLE_TOKEN   # the token from an environment variable
    %speckle_token clear                 # sign out (revokes only what sign-in obtained)
    creds = %speckle_token               # the Credentials object (its repr is masked)

A token never passes through the cell's text: ``set`` reads it with ``getpass`` (ipykernel
turns that into a password field), ``--env`` reads it from the kernel's environment. So it
is never in ``In``, and ``Out`` only ever holds a ``Credentials`` object, whose repr and the
display registered here are masked. Expected failures print one line naming the cause and
the next step, no traceback; their messages never contain the token.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from IPython.core import magic
from IPython.core import magic_arguments as magic_args

from ._names import ENV_TOKEN, env_text
from .credentials import Credentials
from .errors import SpeckleError

if TYPE_CHECKING:
    from .session import Session

__all__ = ["SpeckleMagics", "describe", "load_ipython_extension"]

Prompt = Callable[[str], str]
_F = TypeVar("_F", bound=Callable[..., Any])


class _Decorator(Protocol):
    def __call__(self, func: _F, /) -> _F: ...


# IPython 8's decorators carry no annotations and IPython 9's are looser than their use here
# (``line_magic`` also takes a name): these names give them the one type we use, on both.
_magics_class = cast(_Decorator, magic.magics_class)
_line_magic = cast(_Decorator, magic.line_magic)
_magic_arguments: Callable[[], _Decorator] = magic_args.magic_arguments
_argument: Callable[..., _Decorator] = magic_args.argument
_parse_argstring: Callable[[Any, str], Any] = magic_args.parse_argstring

_SOURCE_WORDS: dict[str, str] = {
    "sign-in": "signed in through the browser; revoked at the server on sign-out",
    "paste": "signed in through the browser (pasted address); revoked at the server on sign-out",
    "loopback": "signed in through the browser (loopback); revoked at the server on sign-out",
    "token": "a token given to use_token(); kept at the server on sign-out",
    "env": "from an environment variable; kept at the server on sign-out",
    "magic": "typed into %speckle_token set; kept at the server on sign-out",
    "remembered": "remembered from an earlier session; kept at the server on sign-out",
    "local": "an account of the Speckle desktop manager; kept at the server on sign-out",
}


def _source_words(creds: Credentials) -> str:
    if creds.source == "remembered" and creds.obtained_by_us:
        return "remembered from an earlier sign-in; revoked at the server on sign-out"
    return _SOURCE_WORDS.get(creds.source, creds.source)


#: Something in a magic's line that looks like a token (a PAT / app token is 42 hex).
_TOKENISH = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{42}(?![0-9A-Za-z])")

#: ``# …`` at the start or after a space, to the end of the line (a URL's ``#`` is not one).
_COMMENT = re.compile(r"(?:^|\s)#.*$")

_HOW_TO_SIGN_IN = (
    "Not signed in to Speckle in this kernel. Run `speckle_nb.sign_in()` and click "
    "'Sign in to Speckle', or `%speckle_token set` to paste a personal access token."
)


def describe(creds: Credentials) -> str:
    """A few readable lines about ``creds``: server, user, source, scopes, masked token."""
    user = creds.user
    who = "an unknown user"
    if user is not None:
        who = user.name or user.id
        if user.email:
            who += f" <{user.email}>"
    scopes = ", ".join(creds.scopes) if creds.scopes else "not known (the server does not say)"
    return (
        f"Signed in to {creds.server_url} as {who}\n"
        f"  source: {_source_words(creds)}\n"
        f"  scopes: {scopes}\n"
        f"  token:  {creds.masked_token}"
    )


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _complain(text: str) -> None:
    sys.stderr.write(text + "\n")


@_magics_class
class SpeckleMagics(magic.Magics):
    """The ``%speckle_token`` line magic. ``prompt`` reads the token (``getpass`` by default)."""

    def __init__(self, shell: Any = None, *, prompt: Prompt | None = None) -> None:
        super().__init__(shell)  # type: ignore[no-untyped-call, unused-ignore]  # typed in IPython 9
        #: Reads a secret without echoing it; tests put their own function here.
        self.prompt: Prompt | None = prompt

    @_magic_arguments()
    @_argument(
        "action",
        nargs="?",
        default="show",
        choices=["show", "set", "clear"],
        help="show (the default): who is signed in where; set: ask for a personal access "
        "token with a hidden prompt, check it with the server and use it; clear: sign out.",
    )
    @_argument(
        "--server",
        metavar="URL",
        help="the Speckle server. set / --env: default SPECKLE_SERVER_URL, else "
        "https://app.speckle.systems; show: default the last server signed in to; clear: "
        "default every server.",
    )
    @_argument(
        "--env",
        metavar="VAR",
        help="use the token in environment variable VAR (e.g. SPECKLE_TOKEN) instead of "
        "asking; it is checked with the server like `set`.",
    )
    @_argument(
        "--remember",
        action="store_true",
        help="set / --env: also keep the token for later kernels (the system keyring, or "
        "a file only you can read); `clear` removes it again.",
    )
    @_argument(
        "--revoke",
        action="store_true",
        default=None,
        help="clear: also revoke the token at the server, even one you brought yourself.",
    )
    @_argument(
        "--keep",
        action="store_false",
        dest="revoke",
        help="clear: do not revoke the token at the server, even one sign-in obtained.",
    )
    @_line_magic
    def speckle_token(self, line: str = "") -> Credentials | None:
        """Show, set, load from the environment, or clear this kernel's Speckle token.

        The token is never typed into the cell (a cell is saved in the notebook and in
        IPython's history): `set` asks with a hidden prompt, `--env VAR` reads a variable.
        `creds = %speckle_token` gives the Credentials object; its repr is masked.
        """
        # A trailing `# comment` is for the reader (the docs' examples carry one): IPython
        # hands it to a line magic as arguments, so drop it before argparse sees it.
        line = _COMMENT.sub("", line)
        if _TOKENISH.search(line):
            _complain(
                "%speckle_token: that looks like a token typed into the cell — cells are "
                "saved in the notebook and IPython's history, so treat it as exposed: revoke "
                "it on the server (Settings → Developer), then run `%speckle_token set` and "
                "paste a new one into the hidden prompt."
            )
            return None
        try:
            args = _parse_argstring(self.speckle_token, line)
        except Exception as exc:  # argparse's UsageError
            _complain(f"%speckle_token: {_scrub(str(exc), line)}. See `%speckle_token?`.")
            return None
        try:
            if args.env is not None:
                if args.action == "clear":
                    _complain("%speckle_token: `clear` takes no --env.")
                    return None
                self._from_env(args.env, args.server, remember=args.remember)
                return None
            if args.action == "set":
                self._set(args.server, remember=args.remember)
                return None
            if args.action == "clear":
                _say(_session().sign_out(args.revoke, server_url=args.server))
                return None
            return self._show(args.server)
        except SpeckleError as exc:
            _complain(str(exc))
            return None

    # ---------------------------------------------------------------- actions

    def _show(self, server_url: str | None) -> Credentials | None:
        creds: Credentials | None = _session().credentials(server_url)
        if creds is None:
            hint = _HOW_TO_SIGN_IN
            if env_text(ENV_TOKEN):
                hint += (
                    " SPECKLE_TOKEN is set: `speckle_nb.client()` will use it, or check it now "
                    "with `%speckle_token --env SPECKLE_TOKEN`."
                )
            _say(hint)
            return None
        # The shell shows it through the display registered in load_ipython_extension.
        return creds

    def _set(self, server_url: str | None, *, remember: bool) -> None:
        session = _session()
        where = session.token_server(server_url)
        try:
            token = self._read_secret(
                f"Personal access token for {where} (input hidden; Enter to cancel): "
            )
        except (KeyboardInterrupt, EOFError):
            _say("Cancelled; nothing changed.")
            return
        token = token.strip()
        if not token:
            _say("No token entered; nothing changed.")
            return
        creds = session.use_token(token, server_url, source="magic")
        where = (
            session.remember(creds)
            if remember
            else "The token stays in this kernel's memory only (add --remember to keep it)."
        )
        _say(f"{_signed_in_line(creds)}. {where}")

    def _from_env(self, variable: str, server_url: str | None, *, remember: bool) -> None:
        token = os.environ.get(variable, "").strip()
        if not token:
            _complain(
                f"%speckle_token: the environment variable {variable} is not set (or is empty) "
                "in this kernel. Set it where Jupyter starts, then restart the kernel — or use "
                "`%speckle_token set`."
            )
            return
        session = _session()
        creds = session.use_token(token, server_url, source="env", env_var=variable)
        saved = f" {session.remember(creds)}" if remember else ""
        _say(f"{_signed_in_line(creds)}, with the token from ${variable}.{saved}")

    def _read_secret(self, message: str) -> str:
        if self.prompt is not None:
            return self.prompt(message)
        import getpass  # looked up per call: ipykernel swaps in its password field

        return getpass.getpass(message)


def _signed_in_line(creds: Credentials) -> str:
    who = creds.user.name if creds.user and creds.user.name else "an unknown user"
    return f"Signed in to {creds.server_url} as {who}"


def _scrub(message: str, line: str) -> str:
    """argparse quotes what it did not understand; never echo a word that might be a secret."""
    known = {"show", "set", "clear"}
    for word in line.split():
        if not word.startswith("-") and word not in known and len(word) > 1:
            message = message.replace(word, "…")
    return message


def _session() -> Session:
    from .session import current_session  # lazy: the magic module loads with the extension

    return current_session()


# --------------------------------------------------------------------------- loading


def _pretty_credentials(creds: Credentials, printer: Any, cycle: bool) -> None:
    printer.text(describe(creds))


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%speckle_token`` and a readable (masked) display for ``Credentials``."""
    ipython.register_magics(SpeckleMagics(ipython))
    formatter = ipython.display_formatter.formatters.get("text/plain")
    if formatter is not None:
        formatter.for_type(Credentials, _pretty_credentials)


def unload_ipython_extension(ipython: Any) -> None:
    formatter = ipython.display_formatter.formatters.get("text/plain")
    if formatter is not None:
        formatter.type_printers.pop(Credentials, None)
