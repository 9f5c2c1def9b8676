"""The aiohttp application: one middleware (errors, auth, the API-version header), the /v2/ dispatcher, upload
purging, logging like Distribution's, and `serve()` with uvloop, TLS and graceful shutdown."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import signal
import ssl
import sys
import time

from aiohttp import web

from . import errors, handlers
from .config import Config
from .handlers.base import API_VERSION_HEADER, DIRECT_BODY, JSON, REGISTRY, Registry, check_name, match
from .storage import StorageDriver, UploadUnknown, open_driver

log = logging.getLogger("pyregistry")
ACCESS_LOG_FORMAT = '%a - - %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"'  # Apache combined, as Distribution


def error_response(err: errors.RegistryHTTPError, method: str = "GET") -> web.Response:
    headers = {"Content-Type": JSON, API_VERSION_HEADER[0]: API_VERSION_HEADER[1], **err.headers}
    return web.Response(status=err.status, body=err.body(), headers=headers)  # aiohttp drops HEAD bodies


@web.middleware
async def registry_middleware(request: web.Request, handler):
    """Route, validate the name, authorize (pull/push/delete, or registry:catalog:*), run, map errors."""
    path = request.path
    if not path.startswith("/v2"):
        return await handler(request)  # e.g. the auth engineer's token endpoint
    reg: Registry = request.app[REGISTRY]
    method = request.method
    try:
        route = match(path)
        if route is None:
            raise errors.RegistryHTTPError("NOT_FOUND", "no such endpoint", {"path": path}, 404)
        if route.name:
            check_name(route.name)
        fn = handlers.lookup(route, method)
        if reg.authorizer is not None:
            if route.kind == "catalog":
                await reg.authorizer.authorize(request, None, {"*"})
            elif route.kind == "base":
                await reg.authorizer.authorize(request, None, set())
            else:
                await reg.authorizer.authorize(request, route.name, {handlers.ACTIONS[method]})
        resp = await fn(request, route)
    except errors.RegistryHTTPError as e:
        resp = error_response(e, method)
    except UploadUnknown:
        resp = error_response(errors.blob_upload_unknown(), method)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as e:  # never a traceback to the client; one line in the log
        log.exception("%s %s: internal error: %s", method, path, e)
        resp = error_response(errors.RegistryHTTPError("UNKNOWN", "unknown error", str(e), 500), method)
    if request.get(DIRECT_BODY):
        resp.force_close()  # the body was read off the socket: aiohttp's parser is out of step with it
    if resp.status >= 400:
        return resp
    resp.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    if reg.config.http.host and resp.headers.get("Location", "").startswith("/"):
        # http.host: absolute Locations for a registry behind a proxy, as Distribution writes them
        resp.headers["Location"] = reg.config.http.host.rstrip("/") + resp.headers["Location"]
    return resp


async def _dispatch(request: web.Request) -> web.StreamResponse:
    raise AssertionError("the middleware answers every /v2 request")  # pragma: no cover


async def _purge_uploads(reg: Registry) -> None:
    """Distribution's uploadpurging: drop sessions older than `age`, every `interval`."""
    p = reg.config.storage.uploadpurging
    while True:
        try:
            cutoff = time.time() - p.age
            for u in await reg.driver.list_uploads():
                if u.started < cutoff:
                    if p.dryrun:
                        log.info("upload purge (dry run): would remove %s/%s", u.repo, u.uuid)
                    else:
                        await reg.driver.cancel_upload(u.repo, u.uuid)
                        log.info("upload purge: removed %s/%s", u.repo, u.uuid)
        except Exception as e:  # keep purging on the next round
            log.error("upload purge failed: %s", e)
        await asyncio.sleep(p.interval)


def build_app(config: Config, driver: StorageDriver | None = None, authorizer=None) -> web.Application:
    app = web.Application(middlewares=[registry_middleware], client_max_size=config.http.maxmanifestsize)
    reg = Registry(config=config, driver=driver or open_driver(config), authorizer=authorizer)
    app[REGISTRY] = reg
    if authorizer is not None and hasattr(authorizer, "routes"):
        app.add_routes(authorizer.routes())
    app.router.add_route("*", "/v2", _dispatch)
    app.router.add_route("*", "/v2/{tail:.*}", _dispatch)

    async def lifecycle(app: web.Application):
        task = None
        if config.storage.uploadpurging.enabled:
            task = asyncio.get_running_loop().create_task(_purge_uploads(reg))
        yield
        if task is not None:
            task.cancel()
        await reg.driver.close()
        reg.sendfile_pool.shutdown(wait=False, cancel_futures=True)

    app.cleanup_ctx.append(lifecycle)
    return app


# -- logging ---------------------------------------------------------------------------------------------------

class _TextFormatter(logging.Formatter):
    """logrus's text format, as Distribution prints it: time="..." level=info msg="..." """

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="seconds")
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        msg = record.getMessage()
        if record.exc_info and level == "debug":
            msg += "\n" + self.formatException(record.exc_info)
        elif record.exc_info:
            msg += f": {record.exc_info[1]!r}"
        msg = msg.replace('"', '\\"')
        return f'time="{ts}" level={level} msg="{msg}" service=pyregistry'


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="seconds")
        return json.dumps({"time": ts, "level": record.levelname.lower(), "msg": record.getMessage(),
                           "service": "pyregistry"})


def setup_logging(config: Config) -> None:
    level = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
             "error": logging.ERROR}[config.log.level]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TextFormatter() if config.log.formatter == "text" else _JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Access lines are plain Apache combined lines on stdout, as Distribution's.
    access = logging.getLogger("aiohttp.access")
    access.propagate = False
    access_handler = logging.StreamHandler(sys.stdout)
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access.handlers[:] = [access_handler]
    access.setLevel(logging.INFO if level <= logging.INFO else logging.WARNING)


# -- serving ---------------------------------------------------------------------------------------------------

def ssl_context(config: Config) -> ssl.SSLContext | None:
    if not config.http.tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(config.http.tls_certificate, config.http.tls_key)
    except (OSError, ssl.SSLError) as e:
        raise errors.ConfigError(f"http.tls: cannot load {config.http.tls_certificate} / "
                                 f"{config.http.tls_key}: {e}") from None
    return ctx


async def serve(config: Config, authorizer=None) -> None:
    """Listen until SIGTERM/SIGINT, then stop accepting, finish in-flight requests (briefly) and exit."""
    app = build_app(config, authorizer=authorizer)
    access_log = logging.getLogger("aiohttp.access") if config.log.accesslog else None
    # read_bufsize: the body buffer holds about one write batch (4 MiB) while the previous one is hashed and written
    runner = web.AppRunner(app, access_log_format=ACCESS_LOG_FORMAT, access_log=access_log,
                           read_bufsize=2 << 20, shutdown_timeout=5.0, handle_signals=False)
    await runner.setup()
    host, port = config.http.host_port
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context(config), backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise errors.ConfigError(f"cannot listen on {config.http.addr}: {e.strerror or e}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    scheme = "https" if config.http.tls else "http"
    log.info("listening on %s://%s, storage %s", scheme, config.http.addr, config.storage.rootdirectory)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
