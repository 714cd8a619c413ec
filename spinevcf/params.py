"""Reading the preprocessing/decoding parameters stored beside each model (``spinevcf.json``).

One reader and one builder serve :class:`spinevcf.localizer.LocalizerConfig` and
:class:`spinevcf.detector.DetectorConfig`, so both report a bad file the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from spinevcf.errors import ModelError

__all__ = ["read_parameter_file", "build_parameters"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def read_parameter_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON object from ``path``.

    Raises:
        ModelError: the file is missing, unreadable, not JSON or not a JSON object.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"model parameter file not found: {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read model parameter file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


def build_parameters(
    cls: type[T],
    data: Mapping[str, Any],
    *,
    required: Iterable[str],
    source: str,
    what: str,
    tuple_keys: Iterable[str] = ("hu_window",),
    aliases: Mapping[str, str] | None = None,
) -> T:
    """Instantiate the dataclass ``cls`` from a parameter mapping.

    Keys of ``required`` must be present; keys that are not fields of ``cls`` are ignored
    (logged at debug level); ``aliases`` maps an alternative key to its field name (used
    when the field itself is absent); values of ``tuple_keys`` become tuples of floats.

    Raises:
        ModelError: a required key is missing or a value is invalid (``what`` names the
            kind of parameters, ``source`` the file).
    """
    missing = [k for k in required if k not in data]
    if missing:
        raise ModelError(f"{source}: missing key(s) {', '.join(missing)}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kwargs = {k: v for k, v in data.items() if k in names}
    for alias, name in (aliases or {}).items():
        if alias in data and name not in data:
            kwargs[name] = data[alias]
    unknown = sorted(set(data) - names - set(aliases or {}))
    if unknown:
        log.debug("ignoring unknown parameter(s) %s", unknown)
    for key in tuple_keys:
        if key in kwargs:
            kwargs[key] = tuple(float(x) for x in kwargs[key])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{source}: invalid {what} parameters: {exc}") from exc
