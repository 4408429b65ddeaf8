"""The demo's HTTP(S) front: routing, authentication headers, TLS, and the http->https redirect."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import ssl
import sys
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import trustme

from . import web
from .app import ApiError, DemoApp, Principal, parse_id
from .copies import Copies
from .faults import Faults
from .mailer import Mailer
from .services import RedisServer, S3Server
from .store import Store
from .worker import Worker

# The demo keeps its policy current: revised on the first of the month it runs in, so the
# 12-month rule (§1798.130(a)(5)) holds whatever year the suites run in.
POLICY_LAST_MODIFIED = datetime.now(UTC).date().replace(day=1).isoformat()
_DEPLOYED_AT = datetime.now(UTC).isoformat(timespec="microseconds")
HSTS = "max-age=31536000; includeSubDomains"
MAX_BODY = 1 << 20
HANDSHAKE_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0
LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class DemoConfig:
    data_dir: Path
    admin_token: str
    host: str = "127.0.0.1"
    port: int = 0
    http_port: int = 0
    sink_url: str | None = None
    sink_ca: Path | None = None
    smtp_url: str | None = None
    flaws: frozenset[str] = field(default_factory=frozenset)
    faults: frozenset[str] = field(default_factory=frozenset)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=headers or {})


@dataclass
class Call:
    """One parsed request, as the route functions see it."""

    handler: DemoHandler
    params: tuple[str, ...]
    query: dict[str, list[str]]
    body: dict[str, Any]
    request_id: str

    @property
    def app(self) -> DemoApp:
        return self.handler.server.demo.app

    @property
    def gpc(self) -> bool:
        return (self.handler.headers.get("Sec-GPC") or "").strip() == "1"

    @property
    def client_ip(self) -> str:
        # the demo sits "behind a proxy" and trusts X-Forwarded-For, so subjects can carry test IPs
        forwarded = self.handler.headers.get("X-Forwarded-For")
        if forwarded and forwarded.split(",")[0].strip():
            return forwarded.split(",")[0].strip()[:64]
        return self.handler.client_address[0]

    def principal(self) -> Principal:
        # bearer only: the session cookie is never accepted, so the JSON API needs no CSRF defence
        return self.app.authenticate(self.handler.headers.get("Authorization"), self.gpc)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


# ---- routes ---------------------------------------------------------------------------------

def home(call: Call) -> Response:
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>MediaPRO demo</title></head><body>"
        "<h1>MediaPRO security-awareness training (demo)</h1>"
        '<p><a href="/privacy-policy">Privacy Policy</a> · '
        '<a href="/privacy-policy#opt-out">Do Not Sell or Share My Personal Information</a></p>'
        "</body></html>"
    )
    return Response(200, page.encode(), "text/html; charset=utf-8")


def privacy_policy(call: Call) -> Response:
    page = resources.files(__package__).joinpath("policy.html").read_text(encoding="utf-8")
    stated = "December 2019" if "outdated_policy_page" in call.app.flaws else POLICY_LAST_MODIFIED
    page = page.replace("{{LAST_MODIFIED}}", stated)
    if "stale_policy_date" in call.app.flaws:
        # every deployment rewrites the text, none touches the date
        page = page.replace("</main>", f"<p>This notice describes the service as deployed at {_DEPLOYED_AT}.</p>\n</main>")
    return Response(200, page.encode(), "text/html; charset=utf-8")


def gpc_support(call: Call) -> Response:
    if "bad_gpc_json" in call.app.flaws:
        return Response(200, b'{"gpc": "yes"}', "text/plain")
    return json_response(200, {"gpc": True, "lastUpdate": POLICY_LAST_MODIFIED})


def create_user(call: Call) -> Response:
    user = call.app.create_user(call.body, call.client_ip, call.gpc, call.request_id)
    headers = {}
    if "pii_in_url" in call.app.flaws:
        headers["Location"] = f"/api/users/{user['id']}?email={quote(user['email'], safe='@')}"
    return json_response(201, user, headers)


def login(call: Call) -> Response:
    token, user_id = call.app.login(call.body, call.gpc, call.request_id)
    if "insecure_cookies" in call.app.flaws:
        cookie = f"session={token}; Path=/"
    else:
        cookie = f"session={token}; Path=/; Secure; HttpOnly; SameSite=Lax"
    return json_response(200, {"token": token, "user_id": user_id}, {"Set-Cookie": cookie})


def get_user(call: Call) -> Response:
    return json_response(200, call.app.get_user(call.principal(), int(call.params[0])))


def patch_user(call: Call) -> Response:
    return json_response(200, call.app.update_user(call.principal(), int(call.params[0]), call.body, call.request_id))


def admin_delete_user(call: Call) -> Response:
    call.app.admin_delete_user(call.principal(), int(call.params[0]), call.request_id)
    return Response(204)


def add_activity(call: Call) -> Response:
    principal = call.principal()
    result = call.app.add_activity(
        principal, int(call.params[0]), call.body, call.client_ip, call.gpc, call.request_id
    )
    return json_response(201, result)


def place_order(call: Call) -> Response:
    return json_response(201, call.app.place_order(call.principal(), int(call.params[0]), call.body, call.request_id))


def add_ticket(call: Call) -> Response:
    return json_response(201, call.app.add_ticket(call.principal(), int(call.params[0]), call.body, call.request_id))


def create_room(call: Call) -> Response:
    return json_response(201, call.app.create_room(call.principal(), call.body, call.request_id))


def post_message(call: Call) -> Response:
    return json_response(201, call.app.post_message(call.principal(), int(call.params[0]), call.body,
                                                    call.request_id))


def room_messages(call: Call) -> Response:
    return json_response(200, call.app.room_messages(call.principal(), int(call.params[0])))


def price(call: Call) -> Response:
    principal = call.principal()
    raw = call.arg("user_id")
    if raw is None:
        if principal.user_id is None:
            raise ApiError(400, "user_id is required with the admin token")
        user_id = principal.user_id
    else:
        user_id = parse_id(raw)
    return json_response(200, call.app.price(principal, user_id))


def create_request(call: Call) -> Response:
    return json_response(202, call.app.create_request(call.principal(), call.body, call.request_id))


def list_requests(call: Call) -> Response:
    page = call.arg("page") or "1"
    if not page.isdigit() or int(page) < 1:
        raise ApiError(400, "page must be a positive integer")
    return json_response(200, call.app.list_requests(call.principal(), int(page)))


def get_request(call: Call) -> Response:
    return json_response(200, call.app.get_request(call.principal(), call.params[0]))


def verify_request(call: Call) -> Response:
    return json_response(200, call.app.verify_request(call.principal(), call.params[0], call.body, call.request_id))


def extend_request(call: Call) -> Response:
    return json_response(200, call.app.extend_request(call.principal(), call.params[0], call.body, call.request_id))


def export(call: Call) -> Response:
    fmt = call.arg("format") or "json"
    if fmt not in ("json", "csv"):
        raise ApiError(400, "format must be json or csv")
    data = call.app.export(call.principal(), call.params[0])
    if "export_html_only" in call.app.flaws:
        return Response(200, call.app.export_html(data), "text/html; charset=utf-8")
    if fmt == "json":
        return json_response(200, data)
    return Response(
        200, call.app.export_zip(data), "application/zip",
        {"Content-Disposition": f'attachment; filename="export-{call.params[0]}.zip"'},
    )


def outbox(call: Call) -> Response:
    return json_response(200, call.app.outbox(call.principal(), call.arg("to"), call.arg("request_id")))


_UUID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
ROUTES: list[tuple[str, str, re.Pattern[str], Callable[[Call], Response]]] = [
    (method, template, re.compile(pattern + r"\Z"), fn)
    for method, template, pattern, fn in [
        ("GET", "/", r"/", home),
        ("GET", "/privacy-policy", r"/privacy-policy", privacy_policy),
        ("GET", "/.well-known/gpc.json", r"/\.well-known/gpc\.json", gpc_support),
        ("POST", "/api/users", r"/api/users", create_user),
        ("POST", "/api/login", r"/api/login", login),
        ("GET", "/api/users/{id}", r"/api/users/(\d{1,18})", get_user),
        ("PATCH", "/api/users/{id}", r"/api/users/(\d{1,18})", patch_user),
        ("POST", "/api/users/{id}/activity", r"/api/users/(\d{1,18})/activity", add_activity),
        ("POST", "/api/users/{id}/tickets", r"/api/users/(\d{1,18})/tickets", add_ticket),
        ("POST", "/api/users/{id}/orders", r"/api/users/(\d{1,18})/orders", place_order),
        ("POST", "/api/rooms", r"/api/rooms", create_room),
        ("POST", "/api/rooms/{id}/messages", r"/api/rooms/(\d{1,18})/messages", post_message),
        ("GET", "/api/rooms/{id}/messages", r"/api/rooms/(\d{1,18})/messages", room_messages),
        ("DELETE", "/api/admin/users/{id}", r"/api/admin/users/(\d{1,18})", admin_delete_user),
        ("GET", "/api/price", r"/api/price", price),
        ("POST", "/api/privacy-requests", r"/api/privacy-requests", create_request),
        ("GET", "/api/privacy-requests", r"/api/privacy-requests", list_requests),
        ("GET", "/api/privacy-requests/{id}", rf"/api/privacy-requests/{_UUID}", get_request),
        ("POST", "/api/privacy-requests/{id}/verify", rf"/api/privacy-requests/{_UUID}/verify", verify_request),
        ("POST", "/api/privacy-requests/{id}/extend", rf"/api/privacy-requests/{_UUID}/extend", extend_request),
        ("GET", "/api/privacy-requests/{id}/export", rf"/api/privacy-requests/{_UUID}/export", export),
        ("GET", "/api/outbox", r"/api/outbox", outbox),
    ]
]


def match_route(method: str, path: str) -> tuple[str, Callable[[Call], Response], tuple[str, ...]]:
    allowed = []
    for route_method, template, pattern, fn in ROUTES:
        found = pattern.match(path)
        if found:
            if route_method == method:
                return template, fn, found.groups()
            allowed.append(route_method)
    if allowed:
        raise ApiError(405, f"method not allowed; allowed: {', '.join(allowed)}")
    raise ApiError(404, "not found")


# ---- HTTP plumbing ---------------------------------------------------------------------------

class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MediaPRO-demo"
    sys_version = ""
    timeout = REQUEST_TIMEOUT
    # headers and body go out in separate writes; with Nagle on, each response waits ~40 ms for an ACK
    disable_nagle_algorithm = True
    server: AppServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        demo = self.server.demo
        if demo.faults.intercept(self, method):
            return
        request_id = uuid.uuid4().hex[:16]
        template = "unmatched"
        try:
            raw = self._read_body()
            path = urlsplit(self.path)
            page = self._web_page(path.path)
            if page is not None:
                template = "web " + path.path if path.path.startswith("/web") else "vendor " + path.path
                status, payload, content_type, headers = page
                response = Response(status, payload, content_type, headers)
            else:
                template, fn, params = match_route(method, path.path)
                body = self._parse_json(raw) if method in ("POST", "PATCH", "PUT") else {}
                call = Call(self, params, parse_qs(path.query), body, request_id)
                response = fn(call)
        except ApiError as exc:
            response = json_response(exc.status, {"error": exc.message})
        except Exception as exc:  # noqa: BLE001 - the client gets a 500, the log gets no personal data
            demo.log.error("unhandled %s request_id=%s", type(exc).__name__, request_id)
            traceback.print_exc()
            response = json_response(500, {"error": "internal error", "request_id": request_id})
        self._send(response)
        # route templates, never raw paths: query strings carry emails (/api/outbox?to=...)
        demo.log.info("http %s %s status=%s request_id=%s", method, template, response.status, request_id)

    def _web_page(self, path: str):
        """The website's pages (/web/...) and the vendors' hosts the demo stands in for (demo/web.py)."""
        demo = self.server.demo
        host = self.headers.get("Host") or ""
        if web.third_party_host(host):
            return web.third_party(host, self.path, self.headers.get("Cookie"), demo.app.flaws)
        if path == "/web" or path.startswith("/web/"):
            return web.first_party(path, demo.app.flaws, demo.sink_port)
        return None

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise ApiError(411, "Content-Length required")
        length_header = self.headers.get("Content-Length") or "0"
        if not length_header.isdigit():
            self.close_connection = True
            raise ApiError(400, "bad Content-Length")
        length = int(length_header)
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "request body too large")
        return self.rfile.read(length) if length else b""

    @staticmethod
    def _parse_json(raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, "body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        return body

    def _send(self, response: Response) -> None:
        response = self.server.demo.faults.outgoing(self, response)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.server.tls_context is not None and "no_hsts" not in self.server.demo.app.flaws:
            self.send_header("Strict-Transport-Security", HSTS)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # the default access log echoes request lines, query strings included; _dispatch logs instead
        pass

    def log_error(self, format: str, *args: Any) -> None:
        self.server.demo.log.info("http protocol error")


class RedirectHandler(BaseHTTPRequestHandler):
    """Plain http only ever points at https: no body echo, no cookies, nothing from the app."""

    protocol_version = "HTTP/1.1"
    server_version = "MediaPRO-demo"
    sys_version = ""
    timeout = REQUEST_TIMEOUT
    server: AppServer

    def _redirect(self) -> None:
        target = urlsplit(self.path)
        location = self.server.demo.url + (target.path or "/") + (f"?{target.query}" if target.query else "")
        self.send_response(308)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _redirect

    def log_message(self, format: str, *args: Any) -> None:
        pass


class AppServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], demo: DemoServer,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.demo = demo
        self.tls_context = tls_context
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls_context is not None:
            # handshake later, in the connection's own thread, so a slow client cannot stall accept()
            sock = self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls_context is not None:
            request.settimeout(HANDSHAKE_TIMEOUT)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that hang up mid-response are routine; anything else goes to stderr, not the app log
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | ssl.SSLError):
            traceback.print_exc()


class DemoServer:
    """The demo target: HTTPS app, http redirector, stores under data_dir, and the background worker."""

    def __init__(self, config: DemoConfig) -> None:
        if not is_loopback(config.host):
            raise ValueError(f"the demo only listens on loopback addresses, not {config.host!r}")
        if config.sink_url:
            sink_host = urlsplit(config.sink_url).hostname or ""
            if urlsplit(config.sink_url).scheme not in ("http", "https") or not is_loopback(sink_host):
                raise ValueError(f"the sink URL must be http(s) on a loopback address, not {config.sink_url!r}")
        if config.smtp_url:
            smtp = urlsplit(config.smtp_url)
            if smtp.scheme != "smtp" or not is_loopback(smtp.hostname or "") or not smtp.port:
                raise ValueError(f"the SMTP URL must be smtp://HOST:PORT on a loopback address, not {config.smtp_url!r}")
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self._threads: list[threading.Thread] = []
        self._started = False
        self.faults = Faults(config.faults)

    def start(self) -> None:
        cfg = self.config
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "tls").mkdir(parents=True, exist_ok=True)
        # The cache and the bucket are real servers of their own, started with the demo (the S3
        # one takes a second or two to import, so it starts while the rest is set up).
        self.redis_server = RedisServer(password=cfg.admin_token)
        self.s3_server = S3Server()
        s3_started = threading.Thread(target=self._start_s3, name="privacy-checks-demo-s3-start")
        s3_started.start()
        try:
            self.redis_server.start()
            tls_context = self._tls_context()
            self.log = self._logger()
            self.store = Store(self.data_dir, secure_delete="no_secure_delete" not in cfg.flaws)
        finally:
            s3_started.join()
        if self._s3_error is not None:
            self.redis_server.stop()
            raise self._s3_error
        self.copies = Copies(self.store, cfg.flaws, self.log, self.data_dir, redis_url=self.redis_server.url,
                             s3_url=self.s3_server.url, s3_secret=cfg.admin_token)
        self.app = DemoApp(self.store, cfg.flaws, self.log, cfg.admin_token, sharing=bool(cfg.sink_url),
                           copies=self.copies, mailing=bool(cfg.smtp_url))
        self.faults.install(self)
        self.https = AppServer((cfg.host, cfg.port), DemoHandler, self, tls_context)
        http_handler = DemoHandler if "plaintext_http" in cfg.flaws else RedirectHandler
        self.http = AppServer((cfg.host, cfg.http_port), http_handler, self, None)
        self.worker = Worker(self.app, cfg.sink_url, self.log, sink_ca=cfg.sink_ca, smtp_url=cfg.smtp_url)
        self.mailer = Mailer(self.store, cfg.smtp_url, self.log) if cfg.smtp_url else None
        for server in (self.https, self.http):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                name=f"privacy-checks-demo-{'https' if server is self.https else 'http'}",
            )
            thread.start()
            self._threads.append(thread)
        self.worker.start()
        self.copies.start()
        if self.mailer is not None:
            self.mailer.start()
        self._started = True
        self.log.info("demo started flaws=%s", ",".join(sorted(cfg.flaws)) or "none")

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for server in (self.https, self.http):
            server.shutdown()
            server.server_close()
        self.redis_server.terminate()
        self.s3_server.terminate()
        self.worker.stop(timeout=1.0)
        self.copies.stop(timeout=1.0)
        if self.mailer is not None:
            self.mailer.stop(timeout=1.0)
        self.redis_server.stop()
        self.s3_server.stop()
        self.log.info("demo stopped")
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)
        # a worker stuck in a delivery timeout still holds the connection; process exit closes it
        if not self.worker.is_alive() and not (self.mailer is not None and self.mailer.is_alive()):
            self.store.close()

    @property
    def sink_port(self) -> int | None:
        """The capture server's port: the website's vendors send there under their own host names."""
        return urlsplit(self.config.sink_url).port if self.config.sink_url else None

    @property
    def url(self) -> str:
        return self._url("https", self.https)

    @property
    def http_url(self) -> str:
        return self._url("http", self.http)

    def _url(self, scheme: str, server: AppServer) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{server.server_address[1]}"

    def ready_line(self) -> str:
        return (f"privacy-checks demo ready url={self.url} http={self.http_url} data={self.data_dir} "
                f"redis=127.0.0.1:{self.redis_server.port} s3={self.s3_server.url}")

    def _start_s3(self) -> None:
        self._s3_error: Exception | None = None
        try:
            self.s3_server.start()
        except Exception as exc:  # noqa: BLE001 - raised in start(), on the caller's thread
            self._s3_error = exc

    def _tls_context(self) -> ssl.SSLContext:
        # a fresh CA per start: nothing to trust beyond this run, and the framework reads ca.pem
        ca = trustme.CA(organization_name="privacy-checks demo CA")
        ca.cert_pem.write_to_path(str(self.data_dir / "tls" / "ca.pem"))
        if "untrusted_cert" in self.config.flaws:
            ca = trustme.CA(organization_name="some other CA")
        leaf = ca.issue_cert("127.0.0.1", "localhost", "::1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if "weak_tls" in self.config.flaws:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # the flaw is the point
                context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("ALL:@SECLEVEL=0")
        else:
            context.minimum_version = ssl.TLSVersion.TLSv1_2
        leaf.configure_cert(context)
        return context

    def _logger(self) -> logging.Logger:
        # a private Logger object: several demos in one process must not share handlers
        log = logging.Logger(f"privacy_checks.demo[{self.data_dir}]", logging.INFO)
        handler = logging.FileHandler(self.data_dir / "logs" / "app.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        return log
