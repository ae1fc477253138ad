"""An ordered, case-insensitive header multimap that remembers how each line was written.

Each header field is kept as (name as written, value, raw line). Lookups use the canonical
lower-case name with compact forms expanded (``v`` == ``Via``, RFC 3261 §7.3.3). A field
that was never modified serialises from its raw line, byte for byte (folding, compact names
and odd whitespace included); a modified or added one is written as ``Name: value``.

Values are the field text with surrounding LWS removed and folded continuation lines joined
by a single space. ``get_all`` returns one string per field line; ``values`` also splits
comma-separated lists (RFC 3261 §7.3.1) for the headers that are lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .errors import SipParseError
from .grammar import LIST_HEADERS, canonical_name, split_list

__all__ = ["Headers"]


def _key(name: str) -> str:
    key = canonical_name(name)
    if key is None:
        raise SipParseError(f"bad header name {name!r}", header=name)
    return key


class Headers:
    """Ordered multimap of SIP header fields."""

    __slots__ = ("_keys", "_names", "_raw", "_values", "version")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._keys: list[str] = []
        self._names: list[str] = []
        self._values: list[str] = []
        self._raw: list[str | None] = []
        self.version = 0
        """Incremented on every change; messages use it to invalidate cached views."""
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _from_parsed(cls, keys: list[str], names: list[str], values: list[str], raw: list[str | None]) -> Headers:
        h = cls.__new__(cls)
        h._keys, h._names, h._values, h._raw = keys, names, values, raw
        h.version = 0
        return h

    # -- reading ----------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first field called ``name``."""
        try:
            return self._values[self._keys.index(_key(name))]
        except ValueError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Values of every field called ``name``, one per field line, in order."""
        key = _key(name)
        return [v for k, v in zip(self._keys, self._values, strict=True) if k == key]

    def values(self, name: str) -> list[str]:
        """Like :meth:`get_all`, with comma-separated list headers split into elements."""
        key = _key(name)
        fields = [v for k, v in zip(self._keys, self._values, strict=True) if k == key]
        if key not in LIST_HEADERS:
            return fields
        out: list[str] = []
        for v in fields:
            out.extend(split_list(v))
        return out

    def count(self, name: str) -> int:
        return self._keys.count(_key(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_name(name) in self._keys

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(name as written, value) pairs in order."""
        return iter(zip(self._names, self._values, strict=True))

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> list[str]:
        """Canonical lower-case names, in order, with repeats."""
        return list(self._keys)

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    # -- writing ----------------------------------------------------------------------
    def _touch(self) -> None:
        self.version += 1

    def add(self, name: str, value: str) -> None:
        """Append a field at the end."""
        self._keys.append(_key(name))
        self._names.append(name)
        self._values.append(value)
        self._raw.append(None)
        self._touch()

    def insert(self, index: int, name: str, value: str) -> None:
        """Insert a field at position ``index`` (0 = top, as a proxy adds its Via)."""
        self._keys.insert(index, _key(name))
        self._names.insert(index, name)
        self._values.insert(index, value)
        self._raw.insert(index, None)
        self._touch()

    def add_first(self, name: str, value: str) -> None:
        """Insert ``name`` above the first field of the same name (or at the top)."""
        key = _key(name)
        try:
            idx = self._keys.index(key)
        except ValueError:
            idx = 0
        self.insert(idx, name, value)

    def remove(self, name: str) -> int:
        """Delete every field called ``name``; returns how many were removed."""
        key = _key(name)
        keep = [i for i, k in enumerate(self._keys) if k != key]
        removed = len(self._keys) - len(keep)
        if removed:
            self._keys = [self._keys[i] for i in keep]
            self._names = [self._names[i] for i in keep]
            self._values = [self._values[i] for i in keep]
            self._raw = [self._raw[i] for i in keep]
            self._touch()
        return removed

    def remove_first(self, name: str) -> str | None:
        """Delete the first field called ``name`` and return its value (a proxy popping its Via).

        When that field holds a comma-separated list, only the first element is removed.
        """
        key = _key(name)
        try:
            idx = self._keys.index(key)
        except ValueError:
            return None
        value = self._values[idx]
        if key in LIST_HEADERS:
            elems = split_list(value)
            if len(elems) > 1:
                self._values[idx] = ", ".join(elems[1:])
                self._raw[idx] = None
                self._touch()
                return elems[0]
        del self._keys[idx], self._names[idx], self._values[idx], self._raw[idx]
        self._touch()
        return value

    def set(self, name: str, value: str) -> None:
        """Replace every field called ``name`` by one (kept at the first one's position)."""
        key = _key(name)
        try:
            idx = self._keys.index(key)
        except ValueError:
            self.add(name, value)
            return
        self._names[idx] = name
        self._values[idx] = value
        self._raw[idx] = None
        for j in range(len(self._keys) - 1, idx, -1):
            if self._keys[j] == key:
                del self._keys[j], self._names[j], self._values[j], self._raw[j]
        self._touch()

    def value_at(self, index: int) -> str:
        return self._values[index]

    def replace_at(self, index: int, value: str) -> None:
        """Replace the value of the field at ``index`` (its name is kept)."""
        self._values[index] = value
        self._raw[index] = None
        self._touch()

    def copy(self) -> Headers:
        h = Headers._from_parsed(list(self._keys), list(self._names), list(self._values), list(self._raw))
        return h

    # -- serialising ------------------------------------------------------------------
    def serialize_into(self, out: list[str]) -> None:
        for name, value, raw in zip(self._names, self._values, self._raw, strict=True):
            out.append(raw if raw is not None else f"{name}: {value}")
