"""Who signed in to the dashboard through SAML: `saml:<name>` in the audit trail."""

from __future__ import annotations

from typing import Literal

from core.models.apikeys import Principal


class SamlPrincipal(Principal):
    """A person identified by the IdP's assertion. `key_id` is `saml:<NameID>`, stable for the
    person across sign-ins (as an OIDC principal's `oidc:<sub>`)."""

    kind: Literal["saml"] = "saml"

    @property
    def initiator(self) -> str:
        return f"saml:{self.name}"
