"""Named contexts (an API URL and its key) in `$XDG_CONFIG_HOME/r2c/config.toml`.

A context holds an API key, or a person's OIDC sign-in (`r2c login --oidc`, cli/oidc_login.py):
its access token, sent as the key, and the refresh token that renews it when it has expired.
The file holds keys and tokens, so it is written 0600 in a 0700 directory, atomically (a
temporary file renamed over it). Which API and key a command uses, first found wins: the flags, then
R2C_URL / R2C_API_URL and R2C_API_KEY, then the current context, then the local `r2c up`
(http://127.0.0.1:8080 and the admin key it wrote to R2C_HOME/admin.key).
"""

from __future__ import annotations

import json
import os
import re
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from cli.api_client import DEFAULT_URL, ConfigError, api_key

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAX_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class OidcSignIn:
    """A person's sign-in at an OIDC issuer (`r2c login --oidc`): where to refresh it."""

    issuer: str
    client_id: str
    token_endpoint: str
    refresh_token: str = field(default="", repr=False)
    expires_at: int = 0  # seconds since the epoch; 0: unknown


@dataclass(frozen=True)
class Context:
    """`key` is an API key, or the access token of `oidc` (sent the same way)."""

    name: str
    url: str
    key: str = field(repr=False)
    oidc: OidcSignIn | None = None


@dataclass(frozen=True)
class Target:
    """Where a command goes and with which key; `source` says where they came from;
    `oidc_context`: the context of a sign-in whose token may be renewed (renew_token)."""

    url: str
    key: str = field(repr=False)
    source: str
    oidc_context: str | None = None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base else Path.home() / ".config"
    return root / "r2c" / "config.toml"


def _load(path: Path) -> tuple[str | None, dict[str, Context]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, {}
    except OSError as err:
        raise ConfigError(f"{path} cannot be read ({err.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    current = data.get("current")
    contexts: dict[str, Context] = {}
    for name, entry in (data.get("contexts") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            contexts[name] = _context(name, entry)
    return (current if isinstance(current, str) else None), contexts


def _context(name: str, entry: dict[str, object]) -> Context:
    url = str(entry["url"])
    if entry.get("auth") != "oidc":
        return Context(name, url, str(entry.get("key", "")))
    expires = entry.get("expires_at")
    sign_in = OidcSignIn(
        issuer=str(entry.get("issuer", "")),
        client_id=str(entry.get("client_id", "")),
        token_endpoint=str(entry.get("token_endpoint", "")),
        refresh_token=str(entry.get("refresh_token", "")),
        expires_at=expires if isinstance(expires, int) else 0,
    )
    return Context(name, url, str(entry.get("access_token", "")), sign_in)


def _entry_lines(ctx: Context) -> list[str]:
    lines = [f"[contexts.{_quote(ctx.name)}]", f"url = {_quote(ctx.url)}"]
    if ctx.oidc is None:
        return [*lines, f"key = {_quote(ctx.key)}", ""]
    o = ctx.oidc
    lines += [
        'auth = "oidc"',
        f"issuer = {_quote(o.issuer)}",
        f"client_id = {_quote(o.client_id)}",
        f"token_endpoint = {_quote(o.token_endpoint)}",
        f"access_token = {_quote(ctx.key)}",
    ]
    if o.refresh_token:
        lines.append(f"refresh_token = {_quote(o.refresh_token)}")
    return [*lines, f"expires_at = {int(o.expires_at)}", ""]


def _quote(text: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes for what json.dumps emits).
    return json.dumps(text, ensure_ascii=True)


def _save(path: Path, current: str | None, contexts: dict[str, Context]) -> None:
    lines = [f"current = {_quote(current)}", ""] if current else []
    for ctx in contexts.values():
        lines += _entry_lines(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def save_context(
    name: str, url: str, key: str, *, make_current: bool = True, oidc: OidcSignIn | None = None
) -> Path:
    """Store an API key (or with `oidc`, the access token of a person's sign-in)."""
    if not NAME.match(name):
        raise ConfigError(f"context name {name!r}: letters, digits, '.', '_' and '-' only")
    path = config_path()
    current, contexts = _load(path)
    contexts[name] = Context(name, url.rstrip("/"), key, oidc)
    _save(path, name if make_current else current, contexts)
    return path


# An access token this close to its expiry is refreshed before it is sent.
REFRESH_MARGIN_SECONDS = 30


def _fresh(ctx: Context, *, now: bool = False) -> Context:
    """The context with an access token that is still valid: refreshed with the refresh
    token when it has (nearly) expired — or `now`, as the API just refused it — and saved;
    without one, a ConfigError that says how to sign in again."""
    sign_in = ctx.oidc
    if sign_in is None or not (sign_in.expires_at or now):
        return ctx
    if not now and sign_in.expires_at - REFRESH_MARGIN_SECONDS > time.time():
        return ctx
    again = f"run `r2c login --url {ctx.url} --oidc --context {ctx.name}` again"
    if not sign_in.refresh_token:
        raise ConfigError(f"the sign-in of context {ctx.name!r} has expired: {again}")
    from cli.oidc_login import SignInError, refresh

    try:
        tokens = refresh(sign_in)
    except SignInError as err:
        raise ConfigError(
            f"the sign-in of context {ctx.name!r} has expired and could not be refreshed"
            f" ({err}): {again}"
        ) from None
    renewed = replace(
        ctx,
        key=tokens.access_token,
        oidc=replace(
            sign_in,
            refresh_token=tokens.refresh_token or sign_in.refresh_token,
            expires_at=tokens.expires_at,
        ),
    )
    path = config_path()
    current, contexts = _load(path)
    contexts[ctx.name] = renewed
    _save(path, current, contexts)
    return renewed


def list_contexts() -> tuple[str | None, list[Context]]:
    current, contexts = _load(config_path())
    return current, list(contexts.values())


def use_context(name: str) -> None:
    path = config_path()
    current, contexts = _load(path)
    if name not in contexts:
        known = ", ".join(contexts) or "none: `r2c login` makes one"
        raise ConfigError(f"no context {name!r} (known: {known})")
    _save(path, name, contexts)


def renew_token(context: str) -> str:
    """A new access token for the context's sign-in, after the API refused the one it had
    (expired during a long watch); a ConfigError when it cannot be renewed."""
    _, contexts = _load(config_path())
    ctx = contexts.get(context)
    if ctx is None or ctx.oidc is None:
        raise ConfigError(f"no OIDC sign-in in context {context!r} to renew")
    return _fresh(ctx, now=True).key


def resolve(url: str | None = None, key: str | None = None, context: str | None = None) -> Target:
    """The API and key, by precedence: flags > environment > the context > local `r2c up`."""
    env_url = (os.environ.get("R2C_URL") or os.environ.get("R2C_API_URL") or "").strip()
    env_key = os.environ.get("R2C_API_KEY", "").strip()
    current, contexts = _load(config_path())
    chosen = context or current
    ctx: Context | None = None
    if chosen is not None:
        ctx = contexts.get(chosen)
        if ctx is None and context is not None:
            raise ConfigError(f"no context {context!r} in {config_path()}")
    # A context named by --context beats the environment; the current one does not.
    if context is not None and ctx is not None:
        if key:
            return Target(url or ctx.url, key, f"context {ctx.name}")
        oidc = ctx.name if ctx.oidc else None
        return Target(url or ctx.url, _fresh(ctx).key, f"context {ctx.name}", oidc)
    final_url = url or env_url or (ctx.url if ctx else "") or DEFAULT_URL
    if key or env_key:
        return Target(final_url.rstrip("/"), key or env_key, "flags/environment")
    # The context's key goes only to the context's own API, never to another URL.
    if ctx is not None and ctx.key and final_url.rstrip("/") == ctx.url:
        oidc = ctx.name if ctx.oidc else None
        return Target(ctx.url, _fresh(ctx).key, f"context {ctx.name}", oidc)
    return Target(final_url.rstrip("/"), api_key(), "local r2c up")
