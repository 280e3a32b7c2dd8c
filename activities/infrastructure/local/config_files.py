"""The rendered configuration file of a set, for a component that asks for one.

`RuntimeSpec.config_file = "json"`: the set's resolved configuration (key -> value, JSON
values as they are, secret values read from Vault) is written to
`R2C_HOME/infra/<component>/<environment>/config/<slot>/configuration.json`, and every instance
of the set gets that path in R2C_CONFIG_FILE. It is the delivery mechanism the component asked
for, as a Kubernetes secret volume is, so it is the one file of the provider that holds secret
values: 0600 in a 0700 folder of its own, replaced atomically (an instance never reads half a
file), rewritten when the set's revision changes, deleted with the set and with the target.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from activities.infrastructure.local.paths import child, private_dir, write_private
from activities.infrastructure.local.state import TargetFiles
from core.configuration_env import InstanceConfig

CONFIG_FOLDER = "config"
FILE_NAME = "configuration.json"


def config_path(files: TargetFiles, slot: str) -> Path:
    """Where the set in `slot` finds its configuration (checked to stay under the root)."""
    return child(files.dir, CONFIG_FOLDER, slot, FILE_NAME)


def write_config(files: TargetFiles, slot: str, config: InstanceConfig) -> Path:
    """Write the set's resolved configuration; returns its path. A set without configuration
    gets `{}`, so a component that asked for the file can always read it."""
    path = config_path(files, slot)
    private_dir(path.parent, files.root)
    write_private(path, json.dumps(dict(config.values), indent=2, ensure_ascii=False) + "\n")
    return path


def remove_config(files: TargetFiles, slot: str) -> None:
    """Delete the set's folder and the file in it (nothing if there is none)."""
    shutil.rmtree(config_path(files, slot).parent, ignore_errors=True)
