"""Classes with named, typed fields as @dataclass makes them, for the modules on pyctr's start-up path.

`dataclasses` imports inspect (ast, dis, tokenize, linecache…) and compiles an __init__, __repr__ and __eq__
per class: ~9 ms of every `pyctr run`. @record builds the same public shape with shared functions and no
imports: keyword or positional construction, defaults and default factories, a dataclass-style repr,
field-wise equality, `frozen=True` (assignment refused, hashable), and `replace`. (pyrunc's records.py
solves the same for tuples; the classes here stay mutable as the dataclasses they replace were.)
"""

from __future__ import annotations

_MISSING = object()


class Field:
    __slots__ = ("default", "default_factory", "repr")

    def __init__(self, default=_MISSING, default_factory=None, repr: bool = True) -> None:
        self.default = default
        self.default_factory = default_factory
        self.repr = repr


def field(*, default=_MISSING, default_factory=None, repr: bool = True):
    """As dataclasses.field: a default, or a factory called per instance; repr=False hides it."""
    return Field(default, default_factory, repr)


class FrozenInstanceError(AttributeError):
    pass


def _frozen_setattr(self, name: str, value) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def record(cls=None, *, frozen: bool = False):
    """Class decorator, used as @record or @record(frozen=True), in place of @dataclass."""

    def wrap(cls):
        names: list[str] = []
        defaults: dict = {}
        factories: dict = {}
        shown: list[str] = []
        for name in cls.__dict__.get("__annotations__", {}):
            value = cls.__dict__.get(name, _MISSING)
            show = True
            if isinstance(value, Field):
                show = value.repr
                if value.default_factory is not None:
                    factories[name] = value.default_factory
                    delattr(cls, name)
                elif value.default is not _MISSING:
                    defaults[name] = value.default
                    setattr(cls, name, value.default)
                else:
                    delattr(cls, name)
            elif value is not _MISSING:
                defaults[name] = value
            if not (name in defaults or name in factories) and (defaults or factories):
                raise TypeError(f"non-default argument {name!r} follows default argument")
            names.append(name)
            if show:
                shown.append(name)
        fields = tuple(names)
        n = len(fields)

        def __init__(self, *args, **kwargs) -> None:
            if len(args) > n:
                raise TypeError(f"{cls.__name__}.__init__() takes {n + 1} positional arguments "
                                f"but {len(args) + 1} were given")
            put = object.__setattr__
            for i, name in enumerate(fields):
                if i < len(args):
                    if name in kwargs:
                        raise TypeError(f"{cls.__name__}.__init__() got multiple values for argument {name!r}")
                    value = args[i]
                elif name in kwargs:
                    value = kwargs.pop(name)
                elif name in factories:
                    value = factories[name]()
                elif name in defaults:
                    value = defaults[name]
                else:
                    raise TypeError(f"{cls.__name__}.__init__() missing 1 required positional argument: {name!r}")
                put(self, name, value)
            if kwargs:
                raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument {next(iter(kwargs))!r}")

        def __repr__(self) -> str:
            return f"{type(self).__qualname__}({', '.join(f'{f}={getattr(self, f)!r}' for f in shown)})"

        def __eq__(self, other):
            if other.__class__ is not self.__class__:
                return NotImplemented
            return all(getattr(self, f) == getattr(other, f) for f in fields)

        cls.__init__ = __init__
        cls.__repr__ = __repr__
        cls.__eq__ = __eq__
        cls.__match_args__ = fields
        cls._record_fields = fields
        if frozen:
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_delattr
            cls.__hash__ = lambda self: hash(tuple(getattr(self, f) for f in fields))
        else:
            cls.__hash__ = None  # as a dataclass with eq and not frozen: unhashable
        return cls

    return wrap if cls is None else wrap(cls)


def replace(obj, **changes):
    """As dataclasses.replace: a copy of `obj` with `changes`."""
    for name in obj._record_fields:
        if name not in changes:
            changes[name] = getattr(obj, name)
    return type(obj)(**changes)
