"""`r2c audit ...`: verify the audit trail's hash chain, export it.

Placeholder: the audit chain work of issue 12 fills this in.
"""

from __future__ import annotations

import typer

audit_app = typer.Typer(help="The audit trail: verify its chain, export it.", no_args_is_help=True)
