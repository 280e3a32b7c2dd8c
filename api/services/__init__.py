"""The API's rules, over the store (`core.db`) and Temporal (`api.gateway`); routers call these."""
