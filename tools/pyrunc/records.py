"""Frozen records with named fields: the part of namedtuple's API pyrunc uses (construction by position or keyword,
defaults, attribute access, ``_replace``, ``_fields``, a readable repr, tuple equality and hashing).

`collections` costs ~1.5 ms of every container start (it imports operator, keyword, reprlib, itertools, and each
namedtuple compiles generated code); this builds the same kind of tuple subclass with one ``type()`` call.
Subclass the result with ``__slots__ = ()`` to add annotations and methods, as with namedtuple.
"""

from __future__ import annotations

import sys
from _operator import itemgetter


def record(name: str, fields: str, defaults: tuple = ()) -> type:
    """A tuple subclass `name` with the space-separated `fields`; `defaults` apply to the rightmost fields."""
    names = tuple(fields.split())
    n = len(names)
    required = n - len(defaults)
    if required < 0:
        raise TypeError(f"{name}: more defaults than fields")
    default_values = tuple(defaults)

    def __new__(cls, *args, **kwargs):
        if not kwargs and len(args) == n:
            return tuple.__new__(cls, args)
        if len(args) > n:
            raise TypeError(f"{name}() takes {n} arguments but {len(args)} were given")
        values = list(args)
        for i in range(len(args), n):
            field = names[i]
            if field in kwargs:
                values.append(kwargs.pop(field))
            elif i >= required:
                values.append(default_values[i - required])
            else:
                raise TypeError(f"{name}() missing required argument: {field!r}")
        if kwargs:
            raise TypeError(f"{name}() got unexpected or repeated arguments: {', '.join(sorted(kwargs))}")
        return tuple.__new__(cls, values)

    def _replace(self, **changes):
        values = [changes.pop(f, v) for f, v in zip(names, self)]
        if changes:
            raise TypeError(f"{name}._replace() got unexpected field names: {', '.join(sorted(changes))}")
        return tuple.__new__(type(self), values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={v!r}' for f, v in zip(names, self))})"

    def __getnewargs__(self) -> tuple:
        return tuple(self)

    namespace = {
        "__slots__": (), "__module__": sys._getframe(1).f_globals.get("__name__", __name__),
        "_fields": names, "_field_defaults": dict(zip(names[required:], default_values)),
        "__new__": __new__, "_replace": _replace, "__repr__": __repr__, "__getnewargs__": __getnewargs__,
    }
    for i, field in enumerate(names):
        namespace[field] = property(itemgetter(i), doc=f"field {i}: {field}")
    return type(name, (tuple,), namespace)
