"""Deep merge of configuration layers, keeping where each value was written.

Layers merge lowest first: keel.yaml `defaults:` < agents/_defaults.yaml < the agent's own file.
Mappings merge key by key, recursively; anything else (a list, a scalar, `null`) written in a higher
layer replaces the lower value entirely. Since the tree nodes carry their positions, an error in a
value that came from a lower layer is reported at the file and line of that layer.
"""

from __future__ import annotations

from keel.config.yaml_source import YEntry, YMap, YNode


def merge(base: YNode | None, over: YNode | None) -> YNode | None:
    """`over` merged on top of `base`. Neither input is modified."""
    if base is None:
        return over
    if over is None:
        return base
    if isinstance(base, YMap) and isinstance(over, YMap):
        entries = dict(base.entries)
        for key, entry in over.entries.items():
            below = entries.get(key)
            value = entry.value if below is None else merge(below.value, entry.value)
            assert value is not None
            entries[key] = YEntry(entry.key_pos, value)
        return YMap(entries, over.pos)
    return over


def merge_layers(*layers: YNode | None) -> YNode | None:
    """All layers merged, lowest first."""
    result: YNode | None = None
    for layer in layers:
        result = merge(result, layer)
    return result
