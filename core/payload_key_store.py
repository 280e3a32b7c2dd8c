"""Which store holds the payload key ring, by `R2C_PAYLOAD_KEYS`: the key file under R2C_HOME
(`file`, the embedded default) or one KV v2 value in the configured Vault (`vault`).

Every process (API, workers, `r2c keys ...`) goes through here, so they all use the same ring."""

from __future__ import annotations

from collections.abc import Callable

from core import payload_keys, payload_keys_vault
from core.codec import KeySource
from core.errors import R2CError
from core.payload_keys import KeyRing, PayloadKeyFile, PayloadKeyFileError
from core.payload_keys_vault import PayloadKeyVault
from core.secrets import CheckAndSetStore
from core.settings import Settings


def _in_vault(settings: Settings, operation: Callable[[CheckAndSetStore, str], KeyRing]) -> KeyRing:
    """`operation` on the ring in Vault, a failure of Vault itself named as the keys' failure."""
    store, where = payload_keys.KIND.open_vault(settings)
    try:
        return operation(store, where)
    except PayloadKeyFileError:
        raise  # the ring itself is at fault: its message says so already
    except R2CError as err:
        raise payload_keys_vault.unavailable(where, err) from None


def open_key_source(settings: Settings) -> KeySource:
    """The ring of this system for a long-running process, created on first use; raises
    (naming Vault and R2C_PAYLOAD_KEYS) when the Vault that holds it cannot be used."""
    if settings.payload_keys == "vault":
        return PayloadKeyVault(*payload_keys.KIND.open_vault(settings))
    return PayloadKeyFile(settings.home)


def read_ring(settings: Settings) -> KeyRing:
    """The ring as it is now; PayloadKeyFileError if none was created yet."""
    if settings.payload_keys == "vault":
        return _in_vault(settings, payload_keys_vault.read_ring)
    return payload_keys.read_ring(settings.home)


def rotate(settings: Settings) -> KeyRing:
    """A fresh current key added to the ring; every older key stays. Blocking."""
    if settings.payload_keys == "vault":
        return _in_vault(settings, payload_keys_vault.rotate)
    return payload_keys.rotate(settings.home)
