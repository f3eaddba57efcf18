"""Releases: numbered, content-addressed snapshots of a project's configuration.

- `keel.releases.snapshot`: which files of a project make a release, and its content hash.
- `keel.releases.store`: releases, their files and activations in the database.
- `keel.releases.deploy`: `deploy` and `rollback` (the CLI's `keel deploy` / `keel rollback`, the API).
- `keel.releases.live`: a server following the live release without restarting.
See docs/prompts.md.
"""
