"""Jinja2 templates as responses (``pip install 'rws-http[templates]'``).

Jinja2 is imported when :class:`Templates` is built, not when this module is, so the
framework installs without it; a missing Jinja2 is an ``ImportError`` that names the extra.

Differences from Starlette's ``Jinja2Templates``, each for a problem its users reported:

- the caller's ``context`` dict is copied, never mutated, and it wins over what context
  processors return (explicit beats implicit);
- ``url_for`` returns a ``str`` and keeps working in ``{% import %}``-ed macros, which Jinja
  renders without the caller's context (it falls back to the request being rendered);
- a missing template names the search path, not just the template;
- ``auto_reload`` is an explicit choice (Jinja's own default re-stats every template on
  every render, which production does not want);
- with ``enable_async=True`` the response renders with ``render_async`` when it is sent.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import mimetypes
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .requests import Request
from .responses import BackgroundTask, HTMLResponse
from .types import Receive, Scope, Send

if TYPE_CHECKING:
    import jinja2

__all__ = ["AUTOESCAPE_EXTENSIONS", "ContextProcessor", "TemplateResponse", "Templates"]

ContextProcessor = Callable[[Request], Mapping[str, Any]]

#: Template names ending in one of these are autoescaped (so are ``render_string`` sources).
AUTOESCAPE_EXTENSIONS = ("html", "htm", "xml", "jinja", "j2")

# Set while a template renders, so ``url_for`` works where Jinja gives no caller context.
_rendering: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "rws_template_request", default=None
)


def _import_jinja() -> Any:
    try:
        import jinja2
    except ImportError as error:  # pragma: no cover (jinja2 is in the test env)
        raise ImportError(
            "rws.http.web.templating needs Jinja2: pip install 'rws-http[templates]'"
        ) from error
    return jinja2


def _request_in(context: Mapping[str, Any]) -> Request | None:
    request = context.get("request")
    return request if isinstance(request, Request) else None


@contextlib.contextmanager
def _rendering_for(request: Request | None) -> Iterator[None]:
    token = _rendering.set(request)
    try:
        yield
    finally:
        _rendering.reset(token)


class TemplateResponse(HTMLResponse):
    """A rendered template. ``.template`` and ``.context`` stay on it for tests.

    With an async Jinja environment the body is rendered when the response is sent, so
    ``.body`` is empty until then (``await response.render_body()`` renders it earlier).
    ``guard`` wraps rendering (``Templates`` uses it to name the search path in errors).
    """

    def __init__(
        self,
        template: jinja2.Template,
        context: dict[str, Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        *,
        guard: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self.template = template
        self.context = context
        self._guard = guard
        self._pending = template.environment.is_async
        content: str | None = None
        if not self._pending:
            with guard(), _rendering_for(_request_in(context)):
                content = template.render(context)
        super().__init__(content, status_code, headers, media_type, background)

    async def render_body(self) -> bytes:
        """Render now (async environments only need it; sync ones rendered at creation)."""
        if self._pending:
            with self._guard(), _rendering_for(_request_in(self.context)):
                text = await self.template.render_async(self.context)
            self.body = text.encode(self.charset)
            self._pending = False
            if any(key == b"content-length" for key, _ in self.raw_headers):
                self.raw_headers[:] = [
                    (key, value) for key, value in self.raw_headers if key != b"content-length"
                ]
                self.raw_headers.append((b"content-length", str(len(self.body)).encode()))
        return self.body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.render_body()
        await super().__call__(scope, receive, send)


def _media_type_for(name: str) -> str | None:
    """``feed.xml`` -> application/xml, ``robots.txt.j2`` -> text/plain; HTML otherwise."""
    base = name
    for suffix in (".jinja", ".j2", ".jinja2"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    guessed, _ = mimetypes.guess_type(base, strict=False)
    if guessed is None or guessed == "text/html":
        return None
    return guessed


class Templates:
    """Renders Jinja2 templates from ``directory`` (one path or several, searched in order).

    Either ``directory`` or a ready ``env`` (then ``env_options`` and ``auto_reload`` are
    not accepted: configure the environment yourself). ``auto_reload=True`` is for
    development: Jinja re-checks each template file's mtime on every render and picks up an
    edit; with ``False`` a template is compiled once and cached (up to Jinja's
    ``cache_size``, 400 by default). ``env_options`` go to ``jinja2.Environment``
    (``enable_async=True``, ``undefined=jinja2.StrictUndefined``, ``extensions=[...]``).

    ``context_processors`` are called with the request for every :meth:`response` and their
    mappings merged into the context, under the caller's own ``context``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        env: jinja2.Environment | None = None,
        auto_reload: bool = False,
        context_processors: Sequence[ContextProcessor] = (),
        **env_options: Any,
    ) -> None:
        jinja = _import_jinja()
        self._jinja = jinja
        if (directory is None) == (env is None):
            raise ValueError("Templates: give exactly one of 'directory' and 'env'")
        for processor in context_processors:
            if not callable(processor):
                raise ValueError(f"context_processors: {processor!r} is not callable")
        self.context_processors: list[ContextProcessor] = list(context_processors)
        if env is not None:
            if env_options or auto_reload:
                raise ValueError(
                    "Templates: with 'env' configure the environment itself; "
                    f"{sorted({*env_options, *(['auto_reload'] if auto_reload else [])})} "
                    "cannot be applied"
                )
            self.env: jinja2.Environment = env
        else:
            assert directory is not None
            for option in ("loader", "auto_reload"):
                if option in env_options:
                    raise ValueError(
                        f"Templates: {option!r} is not an environment option here "
                        "(use 'directory' / the 'auto_reload' argument, or pass 'env')"
                    )
            self.search_path = self._check_directories(directory)
            env_options.setdefault(
                "autoescape",
                jinja.select_autoescape(
                    enabled_extensions=AUTOESCAPE_EXTENSIONS,
                    disabled_extensions=(),
                    default_for_string=True,
                    default=False,
                ),
            )
            self.env = jinja.Environment(
                loader=jinja.FileSystemLoader(self.search_path),
                auto_reload=auto_reload,
                **env_options,
            )
        self.env.globals.setdefault("url_for", self._url_for_function())

    @staticmethod
    def _check_directories(
        directory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    ) -> list[str]:
        paths = [directory] if isinstance(directory, str | os.PathLike) else list(directory)
        if not paths:
            raise ValueError("Templates: 'directory' is an empty list")
        result: list[str] = []
        for path in paths:
            text = os.fspath(path)
            if not os.path.isdir(text):
                raise ValueError(f"Templates: directory {text!r} does not exist")
            result.append(text)
        return result

    def _url_for_function(self) -> Callable[..., str]:
        @self._jinja.pass_context  # type: ignore[untyped-decorator]
        def url_for(context: jinja2.runtime.Context, name: str, /, **path_params: Any) -> str:
            request = context.get("request")
            if not isinstance(request, Request):
                request = _rendering.get()
            if request is None:
                raise RuntimeError(
                    f"url_for({name!r}) needs the request: render with templates.response() "
                    "or put 'request' in the context"
                )
            return str(request.url_for(name, **path_params))

        return url_for  # type: ignore[no-any-return]

    # -- lookup ------------------------------------------------------------------------------

    def _describe_search_path(self) -> str:
        loader = self.env.loader
        searchpath = getattr(loader, "searchpath", None)
        if isinstance(searchpath, list):
            return "search path: " + ", ".join(repr(path) for path in searchpath)
        return f"loader: {loader!r}"

    @contextlib.contextmanager
    def _clear_not_found(self) -> Iterator[None]:
        """Re-raise Jinja's bare ``TemplateNotFound('x.html')`` with the search path."""
        jinja = self._jinja
        try:
            yield
        except jinja.TemplateNotFound as error:
            if "search path" in str(error.message) or "loader:" in str(error.message):
                raise
            raise jinja.TemplateNotFound(
                error.name,
                f"template {error.name!r} not found ({self._describe_search_path()})",
            ) from None

    def get_template(self, name: str) -> jinja2.Template:
        """The compiled template (``TemplateNotFound`` naming the search path if missing)."""
        with self._clear_not_found():
            template: jinja2.Template = self.env.get_template(name)
        return template

    # -- rendering ---------------------------------------------------------------------------

    def render(self, name: str, context: Mapping[str, Any] | None = None) -> str:
        """Render to a string outside a request (emails, static pages); sync environments."""
        self._require_sync("render")
        template = self.get_template(name)
        values = dict(context or {})
        with self._clear_not_found(), _rendering_for(_request_in(values)):
            text: str = template.render(values)
        return text

    async def render_async(self, name: str, context: Mapping[str, Any] | None = None) -> str:
        """Render with an ``enable_async=True`` environment."""
        template = self.get_template(name)
        values = dict(context or {})
        with self._clear_not_found(), _rendering_for(_request_in(values)):
            text: str = await template.render_async(values)
        return text

    def render_string(self, source: str, context: Mapping[str, Any] | None = None) -> str:
        """Render template source text; autoescaped (HTML), unless ``env`` says otherwise."""
        self._require_sync("render_string")
        values = dict(context or {})
        with self._clear_not_found(), _rendering_for(_request_in(values)):
            text: str = self.env.from_string(source).render(values)
        return text

    def _require_sync(self, what: str) -> None:
        if self.env.is_async:
            raise RuntimeError(f"{what}() is for sync environments; use {what}_async()")

    def response(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> TemplateResponse:
        """Render ``name`` for ``request``.

        The context holds ``request``, ``t`` (the request's translator when
        :class:`~rws.http.web.i18n.LocaleMiddleware` chose one), what the context processors
        return, then ``context``; later entries win. ``media_type`` defaults to HTML, or to
        the type the name suggests (``feed.xml`` -> ``application/xml``).
        """
        if not isinstance(request, Request):
            raise TypeError(
                f"templates.response() takes the request first, not {type(request).__name__}"
            )
        if not isinstance(name, str):
            raise TypeError(
                f"templates.response(request, name, context): name must be a str, "
                f"not {type(name).__name__}"
            )
        merged: dict[str, Any] = {"request": request}
        translator = request.scope.get("state", {}).get("t")
        if translator is not None:
            merged["t"] = translator
        for processor in self.context_processors:
            extra: Any = processor(request)
            if inspect.isawaitable(extra):
                if inspect.iscoroutine(extra):
                    extra.close()  # not awaited on purpose: no "never awaited" warning
                raise TypeError(
                    f"context processor {processor!r} returned an awaitable; "
                    "context processors must be sync functions"
                )
            merged.update(extra)
        if context:
            merged.update(context)
        return TemplateResponse(
            self.get_template(name),
            merged,
            status_code=status_code,
            headers=headers,
            media_type=media_type or _media_type_for(name),
            background=background,
            guard=self._clear_not_found,
        )
