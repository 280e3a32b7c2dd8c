"""`r2c login --oidc`: a person signs in at the test's real OIDC issuer. The CLI is a real
process; the test plays the browser with httpx: it opens the URL the CLI prints, submits the
issuer's sign-in form and follows the redirect to the CLI's loopback server."""

from __future__ import annotations

import asyncio
import html
import re
import stat
import sys
import time
import tomllib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests.integration.cli_served import cli_env, r2c, served_over_http
from tests.integration.oidc_issuer import AUDIENCE, running_issuer
from tests.integration.system import System

HIDDEN = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


async def _sign_in_url(stderr: asyncio.StreamReader) -> str:
    """The URL the CLI prints for a machine without a browser."""
    while line := (await asyncio.wait_for(stderr.readline(), 30)).decode():
        if line.startswith("  http"):
            return line.strip()
    raise AssertionError("the CLI printed no sign-in URL")


async def test_sign_in_in_the_browser_then_an_expired_token_is_refreshed(
    make_system: Callable[..., Any],
) -> None:
    with running_issuer() as (issuer, _):
        issuer.users["alice"] = ["developers"]
        issuer.access_seconds = 5  # below the CLI's margin: the next command refreshes
        system: System = await make_system(
            worker=False, oidc_issuer=issuer.url, oidc_audience=AUDIENCE,
            oidc_role_map={"developers": "operator"},
        )  # fmt: skip
        async with served_over_http(system) as url:
            login = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "login", "--url", url, "--oidc", "--issuer",
                issuer.url, "--client-id", "r2c-cli", "--context", "sso",
                env=cli_env(system, local_api=False),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert login.stderr is not None
            sign_in_url = await _sign_in_url(login.stderr)
            asked = dict(parse_qsl(urlsplit(sign_in_url).query))
            assert asked["code_challenge_method"] == "S256" and asked["client_id"] == "r2c-cli"
            assert asked["redirect_uri"].startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(timeout=10) as browser:
                page = await browser.get(sign_in_url)
                form = {html.unescape(k): html.unescape(v) for k, v in HIDDEN.findall(page.text)}
                answer = await browser.post(
                    f"{issuer.url}/authorize", data={**form, "username": "alice"}
                )
                callback = answer.headers["location"]
                # Another sign-in's answer (another state) is refused; the CLI keeps waiting.
                query = dict(parse_qsl(urlsplit(callback).query))
                forged = callback.split("?")[0] + "?" + urlencode({**query, "state": "forged"})
                assert (await browser.get(forged)).status_code == 400
                done = await browser.get(callback)
                assert done.status_code == 200 and "Signed in" in done.text
            out, err = await asyncio.wait_for(login.communicate(), 30)
            printed = out.decode() + err.decode()
            assert login.returncode == 0, printed
            assert "signed in to " in printed and "refreshed when it expires" in printed

            path = system.settings.home / "xdg" / "r2c" / "config.toml"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            saved = tomllib.loads(path.read_text())["contexts"]["sso"]
            assert saved["auth"] == "oidc" and saved["issuer"] == issuer.url
            assert saved["access_token"] not in printed and saved["refresh_token"] not in printed

            # The access token (nearly) expired: the next command refreshes it, and goes on.
            listed = await r2c(system, "get", "components", "-o", "json", local_api=False)
            assert listed.returncode == 0, listed.stderr
            assert issuer.refreshed == 1
            renewed = tomllib.loads(path.read_text())["contexts"]["sso"]
            assert renewed["access_token"] != saved["access_token"]
            assert renewed["access_token"] not in listed.stdout + listed.stderr
            contexts = await r2c(system, "context", "list", local_api=False)
            assert "sso" in contexts.stdout and "oidc" in contexts.stdout

            # A token the API refuses (401) though the file says it is still valid (it ran out
            # during a long watch): renewed with the refresh token, and the request sent again.
            stale = issuer.mint(sub="alice", preferred_username="alice", exp=int(time.time()) - 600)
            path.write_text(
                path.read_text()
                .replace(renewed["access_token"], stale)
                .replace(
                    f"expires_at = {renewed['expires_at']}",
                    f"expires_at = {int(time.time()) + 3600}",
                )
            )
            again = await r2c(system, "get", "components", local_api=False)
            assert again.returncode == 0 and issuer.refreshed == 2, again.stderr
            renewed = tomllib.loads(path.read_text())["contexts"]["sso"]
            assert renewed["access_token"] != stale

            # Without a refresh token, an expired sign-in says what to do (a usage error).
            path.write_text(
                re.sub(r"refresh_token = .*\n", "", path.read_text()).replace(
                    f"expires_at = {renewed['expires_at']}", "expires_at = 1"
                )
            )
            expired = await r2c(system, "get", "components", local_api=False)
            assert expired.returncode == 2
            assert "has expired: run `r2c login --url" in expired.stderr
            assert "--oidc --context sso` again" in expired.stderr
