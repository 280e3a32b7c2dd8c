"""The settings of a command's entry point, loaded once the same way by every command."""

from __future__ import annotations

import typer

from core.logging import setup_logging
from core.paths import secure_home
from core.settings import Settings, SettingsError, load_settings


def entry_settings(process: str | None = None) -> Settings:
    """The settings, or exit 2 saying which variable is wrong. The state folder and every
    file the command or its children create are private; with `process`, it logs as that."""
    try:
        settings = load_settings()
    except SettingsError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    secure_home(settings.home)
    if process is not None:
        setup_logging(settings.log_level, process, settings.log_format)
    return settings
