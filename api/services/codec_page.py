"""The page of `GET /codec/session`: sign in with an API key for the Temporal Web UI's codec
calls, and the UI setting that makes the UI send the session. Static but for two URLs (the UI,
this codec server); the key goes from the form to `POST /codec/session` as JSON, never kept."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Codec session</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}input{{width:100%}}</style>
</head><body>
<h1>Decoded payloads in the Temporal Web UI</h1>
<form id="sign-in">
<label for="api-key">API key (viewer or above)</label>
<input id="api-key" name="api_key" type="password" autocomplete="off" required maxlength="200">
<button type="submit">Sign in</button>
<button type="button" id="sign-out">Sign out</button>
</form>
<p id="status" role="status"></p>
<p>Then, once per browser, in the <a href="{ui}">Temporal Web UI</a>: open the Codec Server
settings, choose "Use my browser setting and ignore Cluster-level setting", enter
<code>{endpoint}</code>, tick "Include cross-origin credentials" and apply.</p>
<script>
const status = document.getElementById("status");
document.getElementById("sign-in").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const input = document.getElementById("api-key");
  const resp = await fetch("session", {{method: "POST",
    headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{api_key: input.value}})}});
  input.value = "";
  const body = await resp.json();
  status.textContent = resp.ok
    ? `Signed in as ${{body.key_name}} (${{body.role}}) until ${{body.expires_at}}.`
    : `${{body.error.message}}. ${{body.error.hint || ""}}`;
}});
document.getElementById("sign-out").addEventListener("click", async () => {{
  await fetch("session", {{method: "DELETE"}});
  status.textContent = "Signed out.";
}});
</script>
</body></html>
"""


def session_page(ui_url: str, codec_url: str) -> str:
    """The page, linking to the UI at `ui_url` and naming this codec server as `codec_url`."""
    return _PAGE.format(ui=escape(ui_url, quote=True), endpoint=escape(codec_url))
