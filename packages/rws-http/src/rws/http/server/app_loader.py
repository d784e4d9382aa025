"""Find the application named on the command line (``module:attribute``).

Import errors are reported for what they are: a module that does not exist is a typo in the
command, while an ImportError raised *inside* the app's module is the app's own bug and keeps
its traceback.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, cast

from .cycle import ASGIApp


class AppLoadError(Exception):
    """The application cannot be loaded; the message says why and what to try."""


def load_app(target: str, *, factory: bool = False, app_dir: str | None = ".") -> ASGIApp:
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise AppLoadError(f"application {target!r} must be given as 'module:attribute'")
    if app_dir is not None:
        directory = str(Path(app_dir).resolve())
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppLoadError(
                f"cannot import module {module_name!r} (looked in {sys.path[0]!r}): {exc}"
            ) from None
        raise
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if factory:
        if not callable(obj):
            raise AppLoadError(f"--factory: {target!r} is not callable")
        obj = obj()
    if not callable(obj):
        raise AppLoadError(f"{target!r} is not an ASGI application (not callable)")
    if inspect.isclass(obj):
        raise AppLoadError(
            f"{target!r} is a class; pass an instance, or use --factory for a factory function"
        )
    return cast(ASGIApp, obj)
