"""Live updates: server-sent event streams of deployments and releases (docs/live-updates.md).

One poller per watched target reads its state the way GET does and fans each change out to
every watcher, so watchers add no load on Temporal."""
