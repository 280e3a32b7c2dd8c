"""The state folder (`R2C_HOME`) is private: the store, the Temporal database, the admin key,
payload keys and logs in it are readable by their owner only.

`secure_home` runs first in every entry point. It sets the process umask, so every file the
process or its children create later (SQLite's WAL and shared-memory files, the Temporal
server's database, logs, lock and ready files) is born 0600 and every folder 0700, without a
chmod at each place that creates one; a folder made earlier with looser modes is closed too.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700


def secure_home(home: Path) -> Path:
    """Make new files private to this user from now on, and `home` a 0700 folder."""
    os.umask(PRIVATE_UMASK)
    home.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(home, PRIVATE_DIR_MODE)
    return home
