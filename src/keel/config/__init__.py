"""Keel project configuration: load, check and describe a project folder.

- `load_project(path)` reads `keel.yaml` and `agents/*.yaml` into a resolved `Project`, or raises
  `ConfigError` listing every problem (file, line, field, message).
- `check_project(path)` returns those problems as a list (empty when the project is valid).
- `export_json_schemas()` returns the JSON Schemas of keel.yaml and agent files, for editors.

The full reference is docs/configuration.md.
"""

from keel.config.json_schemas import export_json_schemas
from keel.config.loader import check_project, find_root, load_project

__all__ = ["check_project", "export_json_schemas", "find_root", "load_project"]
