"""Deployment specs several tests share."""

from __future__ import annotations

from typing import Any

# The canary a new user writes (the and the README's): no initial delay, so the first
# measurement comes right after the weight change, before the new version's traffic.
BAD_CANARY: dict[str, Any] = {
    "type": "canary",
    "steps": [
        {"set_weight": 20},
        {
            "analysis": {
                "metrics": [
                    {
                        "name": "error_rate",
                        "failure_condition": "result > 0.05",
                        "interval": "2s",
                        "count": 3,
                    }
                ]
            }
        },
        {"set_weight": 100},
    ],
}
