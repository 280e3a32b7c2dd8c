"""The dashboard as a SAML 2.0 service provider: pysaml2, which checks signatures with xmlsec1.

One IdP, from its metadata (R2C_UI_SAML_IDP_METADATA): its signing certificates are the only
keys a response may be signed with (xmlsec1 is told to ignore a certificate the response
carries). A response is accepted only when all of these hold, each refusal a `SamlRefused`
with a stable `reason` for the audit trail:

- the assertion, or the whole response, is signed by the IdP (`signature`);
- it answers the AuthnRequest this browser's sign-in sent (`InResponseTo`: `unknown_request`);
- it was sent to our ACS URL (`destination`), by the IdP (`issuer`), for us (`audience`);
- NotBefore/NotOnOrAfter hold, give or take LEEWAY_SECONDS (`expired`, `not_yet_valid`).

pysaml2 skips some of these when the element is missing (no AudienceRestriction, no
Destination): they are checked again here, and a missing one is a refusal.

pysaml2 logs NameIDs, attribute values and whole assertions: its logger is silenced, and
nothing here repeats what the assertion says.
"""

from __future__ import annotations

import calendar
import hmac
import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    # pysaml2 7.5 names a cipher mode (CFB) cryptography has deprecated, at import; it is
    # never used here, and the tests turn warnings into errors.
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, SAMLError  # type: ignore[import-untyped]
    from saml2.client import Saml2Client  # type: ignore[import-untyped]
    from saml2.config import SPConfig  # type: ignore[import-untyped]
    from saml2.metadata import create_metadata_string  # type: ignore[import-untyped]
    from saml2.response import IncorrectlySigned, StatusError, UnsolicitedResponse  # type: ignore[import-untyped]
    from saml2.saml import NAMEID_FORMAT_UNSPECIFIED  # type: ignore[import-untyped]
    from saml2.sigver import SigverError  # type: ignore[import-untyped]
    from saml2.time_util import str_to_time  # type: ignore[import-untyped]
    from saml2.validate import ResponseLifetimeExceed, ToEarly  # type: ignore[import-untyped]

# Never to our logs: pysaml2 logs the assertion's content at info and error levels.
logging.getLogger("saml2").setLevel(logging.CRITICAL + 1)

LEEWAY_SECONDS = 60
MAX_RESPONSE_CHARS = 256 * 1024  # base64 of the SAMLResponse form field
MAX_GROUPS = 1000
MAX_VALUE_CHARS = 256


class SamlRefused(Exception):
    """The IdP's answer is not accepted; `reason` is a short stable name for the audit trail,
    `message` and `hint` are for the person (they never repeat the assertion)."""

    def __init__(self, reason: str, message: str, hint: str = "sign in again") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.hint = hint


def _refuse(reason: str, message: str, hint: str = "sign in again from /ui/login") -> NoReturn:
    raise SamlRefused(reason, message, hint)


@dataclass(frozen=True)
class Assertion:
    """What a verified assertion says about the person."""

    assertion_id: str
    name_id: str
    attributes: dict[str, list[str]]  # by Name and by FriendlyName
    not_on_or_after: datetime


class ServiceProvider:
    """pysaml2's client for one IdP. Its methods run xmlsec1: call them in a thread."""

    def __init__(
        self,
        *,
        entity_id: str,
        acs_url: str,
        idp_metadata: str,
        xmlsec: str,
        key_file: Path | None = None,
        cert_file: Path | None = None,
    ) -> None:
        self.entity_id = entity_id
        self.acs_url = acs_url
        self.signs_requests = key_file is not None
        sp: dict[str, Any] = {
            "endpoints": {"assertion_consumer_service": [(acs_url, BINDING_HTTP_POST)]},
            "allow_unsolicited": False,
            "authn_requests_signed": self.signs_requests,
            "want_assertions_signed": False,
            "want_response_signed": False,
            "want_assertions_or_response_signed": True,
            "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
        }
        config: dict[str, Any] = {
            "entityid": entity_id,
            "xmlsec_binary": xmlsec,
            "metadata": {"inline": [idp_metadata]},
            "accepted_time_diff": LEEWAY_SECONDS,
            "allow_unknown_attributes": True,
            "service": {"sp": sp},
        }
        if key_file is not None and cert_file is not None:
            config["key_file"] = str(key_file)
            config["cert_file"] = str(cert_file)
        conf = SPConfig()
        conf.load(config)
        self._conf = conf
        self._client = Saml2Client(config=conf)
        idps = list(conf.metadata.identity_providers())
        if len(idps) != 1:
            raise ValueError(f"the IdP metadata describes {len(idps)} identity providers, not one")
        self.idp = str(idps[0])
        if not conf.metadata.certs(self.idp, "idpsso", use="signing"):
            raise ValueError("the IdP metadata has no signing certificate")
        if not conf.metadata.single_sign_on_service(self.idp, BINDING_HTTP_REDIRECT):
            raise ValueError("the IdP metadata has no SingleSignOnService for HTTP-Redirect")

    def login(self) -> tuple[str, str]:
        """A new AuthnRequest: its id, and the IdP's URL to send the browser to."""
        request_id, info = self._client.prepare_for_authenticate(
            entityid=self.idp,
            binding=BINDING_HTTP_REDIRECT,
            response_binding=BINDING_HTTP_POST,
            sign=self.signs_requests,
        )
        location = dict(info["headers"])["Location"]
        return str(request_id), str(location)

    def metadata(self) -> bytes:
        """Our SP metadata: entity id, ACS URL and binding, and our certificate if any."""
        made = create_metadata_string(None, config=self._conf)
        return made if isinstance(made, bytes) else str(made).encode()

    def accept(self, saml_response: str, request_id: str) -> Assertion:
        """The verified assertion of a base64 SAMLResponse answering `request_id`."""
        if not saml_response or len(saml_response) > MAX_RESPONSE_CHARS:
            _refuse("malformed", "the IdP's answer is missing or too large")
        try:
            resp = self._client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding={request_id: "/ui"}
            )
        except ResponseLifetimeExceed:
            _refuse("expired", "the IdP's assertion has expired")
        except ToEarly:
            _refuse(
                "not_yet_valid",
                "the IdP's assertion is not valid yet",
                "check the clocks of this server and of the IdP, then sign in again",
            )
        except UnsolicitedResponse:
            _refuse(
                "unknown_request",
                "the IdP's answer does not belong to this browser's sign-in (unknown"
                " InResponseTo: unsolicited, replayed or from another browser)",
            )
        except StatusError:
            _refuse("idp_refused", "the IdP did not sign you in", "sign in at the IdP again")
        except (SigverError, IncorrectlySigned):
            _refuse(
                "signature",
                "the IdP's answer is not signed with the IdP's key (bad or missing signature)",
                "if this persists, an admin should check R2C_UI_SAML_IDP_METADATA is current",
            )
        except SamlRefused:
            raise
        except Exception as err:  # pysaml2 raises plain exceptions for several checks
            _refuse(*_classify(err))
        if resp is None or resp.assertion is None:
            _refuse("malformed", "the IdP's answer holds no assertion")
        return self._checked(resp, request_id)

    def _checked(self, resp: Any, request_id: str) -> Assertion:
        # What pysaml2 lets through when the element is absent.
        if not hmac.compare_digest(str(resp.in_response_to or "").encode(), request_id.encode()):
            _refuse("unknown_request", "the IdP's answer does not answer this sign-in")
        if resp.response.destination != self.acs_url:
            _refuse(
                "destination",
                "the IdP's answer was sent to another address than this dashboard's",
                "an admin should check the ACS URL registered at the IdP (docs/dashboard.md)",
            )
        assertion = resp.assertion
        issuer = assertion.issuer.text.strip() if assertion.issuer is not None else ""
        if issuer != self.idp:
            _refuse("issuer", "the assertion was not issued by the configured IdP")
        conditions = assertion.conditions
        audiences = [
            (a.text or "").strip()
            for r in (conditions.audience_restriction if conditions else [])
            for a in r.audience
        ]
        if self.entity_id not in audiences:
            _refuse(
                "audience",
                "the assertion is meant for another service (its audience is not this"
                " dashboard's entity id)",
                "an admin should check the entity id registered at the IdP",
            )
        if conditions is None or not conditions.not_on_or_after:
            _refuse("malformed", "the assertion has no NotOnOrAfter")
        name_id = (
            resp.name_id.text.strip() if resp.name_id is not None and resp.name_id.text else ""
        )
        if not name_id or len(name_id) > MAX_VALUE_CHARS or not assertion.id:
            _refuse("malformed", "the assertion names no one (no NameID)")
        expires = datetime.fromtimestamp(_timestamp(str(conditions.not_on_or_after)), tz=UTC)
        return Assertion(
            assertion_id=str(assertion.id)[:MAX_VALUE_CHARS],
            name_id=name_id,
            attributes=_attributes(assertion),
            not_on_or_after=expires,
        )


def _timestamp(value: str) -> float:
    return float(calendar.timegm(str_to_time(value)))


def _attributes(assertion: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for statement in assertion.attribute_statement or []:
        for attribute in statement.attribute or []:
            values = [
                (v.text or "").strip()
                for v in (attribute.attribute_value or [])[:MAX_GROUPS]
                if v.text and len(v.text.strip()) <= MAX_VALUE_CHARS
            ]
            for key in {attribute.name, attribute.friendly_name} - {None, ""}:
                found.setdefault(str(key), []).extend(values)
    return found


def _classify(err: Exception) -> tuple[str, str, str]:
    """A reason for pysaml2's plain exceptions (its text is about the check, never the
    assertion's values, and is not shown anyway)."""
    text = str(err)
    if "AudienceRestrictions" in text:
        return (
            "audience",
            "the assertion is meant for another service (its audience is not this"
            " dashboard's entity id)",
            "an admin should check the entity id registered at the IdP",
        )
    if "session id and requestURI" in text or "Unsolicited" in text:
        return (
            "unknown_request",
            "the IdP's answer does not belong to this browser's sign-in",
            "sign in again from /ui/login",
        )
    if isinstance(err, SAMLError) and "ignature" in text:
        return ("signature", "the IdP's answer has a bad signature", "sign in again")
    return (
        "malformed",
        f"the IdP's answer could not be verified ({type(err).__name__})",
        "sign in again from /ui/login",
    )
