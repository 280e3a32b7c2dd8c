"""The web dashboard at /ui: server-rendered pages, sign-in and sessions (docs/dashboard.md)."""
