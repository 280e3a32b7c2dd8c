"""A real SAML 2.0 identity provider for the tests (pysaml2's `saml2.server.Server`), on a free
loopback port: its metadata at /metadata, and single sign-on at /sso (HTTP-Redirect binding in,
HTTP-POST binding out). Its key and self-signed certificate are made in the test.

Sign-in is one field (the user name, no password): users and their groups are set by the test
in `users`. The answer is the usual auto-submitting form carrying a signed SAMLResponse (the
assertion and the response both signed) to the service provider's ACS URL; a test reads the
form and posts it itself, as the browser would.

`respond` also makes the answers an attacker would try: `tampered` (a group changed after
signing), `other_key` (signed by a key that is not in the metadata, its certificate included
in the signature), `expired`, `other_audience` (an assertion for another service).
"""

from __future__ import annotations

import base64
import html
import re
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

with warnings.catch_warnings():
    # pysaml2 names a deprecated cipher mode at import (as in api/ui/saml_sp.py).
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.assertion import Policy
    from saml2.config import IdPConfig
    from saml2.metadata import create_metadata_string
    from saml2.saml import NAME_FORMAT_BASIC, NAMEID_FORMAT_UNSPECIFIED, NameID
    from saml2.server import Server

Variant = Literal["ok", "tampered", "other_key", "expired", "other_audience"]
OTHER_AUDIENCE = "https://elsewhere.example/saml/metadata"
POLICY = {"lifetime": {"minutes": 5}, "name_form": NAME_FORMAT_BASIC}
_FORM_FIELD = re.compile(r'name="(SAMLResponse|RelayState)" value="([^"]*)"')
_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def key_and_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """An RSA key and a self-signed certificate for it, as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


class _PastPolicy(Policy):  # type: ignore[misc]
    """Conditions that ended ten minutes ago: an expired assertion, signed as usual."""

    def not_on_or_after(self, sp_entity_id: str) -> str:
        del sp_entity_id
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))

    def conditions(self, sp_entity_id: str) -> Any:
        made = super().conditions(sp_entity_id)
        made.not_before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1200))
        return made


@dataclass
class Idp:
    url: str
    directory: Path
    users: dict[str, list[str]] = field(default_factory=dict)  # user name -> groups
    sso_requests: int = 0
    _servers: dict[str, Server] = field(default_factory=dict)  # "ok" and "other_key"
    _keys: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    @property
    def entity_id(self) -> str:
        return f"{self.url}/metadata"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/metadata"

    def _config(self, key: str, sp_metadata: list[str]) -> IdPConfig:
        key_file, cert_file = self._keys[key]
        conf = IdPConfig()
        conf.load({
            "entityid": self.entity_id,
            "xmlsec_binary": shutil.which("xmlsec1"),
            "key_file": str(key_file),
            "cert_file": str(cert_file),
            "metadata": {"inline": sp_metadata} if sp_metadata else {},
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [(f"{self.url}/sso", BINDING_HTTP_REDIRECT)]
                    },
                    "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
                    "policy": {"default": POLICY},
                }
            },
        })  # fmt: skip
        return conf

    def metadata(self) -> bytes:
        made = create_metadata_string(None, config=self._config("ok", []))
        return made if isinstance(made, bytes) else str(made).encode()

    def trust(self, sp_metadata: str, sp_entity_id: str) -> None:
        """Know the service provider (its entity id and ACS URL) from its metadata, and
        another service at the same ACS URL (for `other_audience`)."""
        other = sp_metadata.replace(f'entityID="{sp_entity_id}"', f'entityID="{OTHER_AUDIENCE}"')
        for key in ("ok", "other_key"):
            self._servers[key] = Server(config=self._config(key, [sp_metadata, other]))

    def respond(self, saml_request: str, user: str, variant: Variant = "ok") -> tuple[str, str]:
        """(ACS URL, base64 SAMLResponse) answering an AuthnRequest (HTTP-Redirect encoded)."""
        server = self._servers["other_key" if variant == "other_key" else "ok"]
        request = server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT)
        message = request.message
        sp = str(message.issuer.text)
        acs = str(message.assertion_consumer_service_url)
        groups = self.users.get(user, [])
        policy = Policy({"default": POLICY}, server.metadata)
        if variant == "expired":
            policy = _PastPolicy({"default": {"name_form": NAME_FORMAT_BASIC}}, server.metadata)
        response = server.create_authn_response(
            {"groups": groups, "displayName": [user]},
            message.id,
            acs,
            OTHER_AUDIENCE if variant == "other_audience" else sp,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=user),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"},
            sign_response=True,
            sign_assertion=True,
            release_policy=policy,
        )
        xml = str(response)
        if variant == "tampered":
            # A better group after signing: what a person editing the answer would try.
            assert groups, "tampering changes the user's first group"
            xml = xml.replace(f">{groups[0]}<", ">ui-operators<", 1)
        return acs, base64.b64encode(xml.encode()).decode()


def form_of(page: str) -> tuple[str, dict[str, str]]:
    """(action, fields) of the IdP's auto-submitting answer page."""
    action = _ACTION.search(page)
    assert action, page
    return html.unescape(action.group(1)), {
        k: html.unescape(v) for k, v in _FORM_FIELD.findall(page)
    }


class _Handler(BaseHTTPRequestHandler):
    idp: Idp

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        del format, args  # quiet: the test output is the place for failures only

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/metadata":
            self._send(200, self.idp.metadata(), "application/samlmetadata+xml")
        elif parts.path == "/sso" and "SAMLRequest" in query:
            self.idp.sso_requests += 1
            request = html.escape(query["SAMLRequest"])
            relay = html.escape(query.get("RelayState", ""))
            page = (
                '<form method="post" action="/sso"><label for="user">User name</label>'
                '<input id="user" name="user"><input type="hidden" name="SAMLRequest"'
                f' value="{request}"><input type="hidden" name="RelayState" value="{relay}">'
                '<button type="submit">Sign in</button></form>'
            )
            self._send(200, page.encode(), "text/html")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self.path != "/sso" or form.get("user") not in self.idp.users:
            self._send(403, b"unknown user", "text/plain")
            return
        acs, response = self.idp.respond(form["SAMLRequest"], form["user"])
        page = (
            f'<form method="post" action="{html.escape(acs)}">'
            f'<input type="hidden" name="SAMLResponse" value="{html.escape(response)}">'
            '<input type="hidden" name="RelayState"'
            f' value="{html.escape(form.get("RelayState", ""))}">'
            '<noscript><button type="submit">Continue</button></noscript></form>'
            "<script>document.forms[0].submit()</script>"
        )
        self._send(200, page.encode(), "text/html")


@contextmanager
def running_idp(directory: Path) -> Iterator[Idp]:
    """The IdP on a free loopback port, with a key and another key (for `other_key`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    idp = Idp(url=f"http://127.0.0.1:{server.server_address[1]}", directory=directory)
    for name in ("ok", "other_key"):
        idp._keys[name] = key_and_certificate(directory, f"idp-{name}")
    handler = type("Handler", (_Handler,), {"idp": idp})
    server.RequestHandlerClass = handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
