"""A live target: runs the operations a profile declares, with safety rails.

Every HTTP call has a timeout; retries happen only where repeating cannot change the
target twice (a connection that failed before the request was sent; idempotent methods on
502/503/504; 429 honouring Retry-After within the step's budget). Any URL whose host is not
allowed is refused, redirects included, and credentials only ever go to the host they were
configured for. Every exchange is recorded as redacted evidence.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from .errors import PollTimeout, TargetError, UnexpectedStatus
from .evidence import SECRET_NAME, Exchange, redact_headers, redact_text, remember_secret

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_MAX_REDIRECTS = 5


def _retry_class():
    from urllib3.util.retry import Retry

    class BudgetRetry(Retry):
        """Retry that never sleeps longer than the caller's budget for a Retry-After."""

        max_retry_after: float = 5.0

        def new(self, **kw):  # keep the budget across urllib3's copies
            obj = super().new(**kw)
            obj.max_retry_after = self.max_retry_after
            return obj

        def sleep_for_retry(self, response) -> bool:
            retry_after = self.get_retry_after(response)
            if retry_after:
                time.sleep(min(retry_after, self.max_retry_after))
                return True
            return False

    return BudgetRetry


def host_allowed(host: str, allowed: list[str]) -> bool:
    host = (host or "").lower().strip("[]")
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern.startswith("*.") and (host.endswith(pattern[1:]) and host != pattern[2:]):
            return True
        if host == pattern:
            return True
    return False


def lookup(data: Any, dotted: str) -> Any:
    """Follow a dotted path (numeric segments index lists); missing parts give None."""
    cur = data
    for part in dotted.split(".") if dotted else []:
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            idx = int(part)
            cur = cur[idx] if -len(cur) <= idx < len(cur) else None
        else:
            return None
        if cur is None:
            return None
    return cur


@dataclass
class StepResult:
    """One step's result. What its captures and conditions see depends on the step's kind
    (docs/profile.md, "What a step's result offers"); `context()` is exactly that."""

    status: int | None = None  # HTTP status, or a command's exit status
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None  # the parsed body (HTTP), stdout (command), or the first row (SQL)
    text: str = ""  # the body (HTTP) or stdout (command)
    url: str = ""
    method: str = ""  # the HTTP method, "SQL", "COMMAND" or "MAIL"
    rows: list[dict] = field(default_factory=list)
    rowcount: int | None = None
    stderr: str = ""
    output_dir: str | None = None

    @property
    def kind(self) -> str:
        return {"SQL": "SQL", "COMMAND": "command", "MAIL": "mail"}.get(self.method, "HTTP")

    def context(self) -> dict[str, Any]:
        if self.kind == "SQL":
            return {"row": self.rows[0] if self.rows else None, "rows": self.rows, "rowcount": self.rowcount}
        if self.kind == "command":
            return {"status": self.status, "stdout": self.text, "stderr": self.stderr, "json": self.json,
                    "output_dir": self.output_dir}
        if self.kind == "mail":
            return {"headers": self.headers, "text": self.text, "json": self.json, "path": self.url}
        return {"status": self.status, "headers": self.headers, "json": self.json, "text": self.text,
                "url": self.url, "method": self.method, "path": urlsplit(self.url).path if self.url else None}

    def describe(self) -> str:
        """What the result was, in words a failure message can carry."""
        if self.kind == "SQL":
            return f"the SQL step on store {self.url} found {self.rowcount} row(s)"
        if self.kind == "command":
            return f"the command {self.url} exited {self.status}"
        if self.kind == "mail":
            return f"the mail to {self.url[len('mailto:'):]}"
        return f"{self.method} {self.url} answered {self.status}" if self.url else "the operation's result"


@dataclass
class OperationResult:
    name: str
    captured: dict[str, Any]
    last: StepResult
    exchanges: list[Exchange]
    started_at: datetime
    finished_at: datetime
    # the results of steps marked `export_part: <name>` (an export made of several requests)
    parts: dict[str, StepResult] = field(default_factory=dict)

    @property
    def elapsed(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


@dataclass
class AdapterResult:
    """What an adapter's operation may return instead of a plain dict of captured values.

    `last` is the result conditions (`gone_when`) and `export.delivery: response` read;
    `parts` the export's parts (`export_part`), each judged for machine-readability."""

    captured: dict[str, Any] = field(default_factory=dict)
    last: StepResult | None = None
    parts: dict[str, StepResult] = field(default_factory=dict)


class Adapter:
    """Base class for systems a recipe can't express (the contract: docs/profile.md, "Python adapter").

    A profile names a subclass with ``adapter: package.module:ClassName``; it is built once per
    run with the Target. A method named like an operation replaces that operation's recipe:
    it receives the subject (None for the operations run without one) and the values captured
    so far (plus ``params=`` and ``others=`` keyword arguments when it accepts them), and
    returns a dict of newly captured values or an AdapterResult. The ledger guard has already
    run. Talk to the target through ``self.target.request`` (allow-list, timeouts, recorded
    and redacted evidence), ``self.target.auth_headers`` and ``self.target.sql``. Raise
    TargetError (or UnexpectedStatus, PollTimeout) with a clear message on failure; raising
    NotImplementedError falls back to the profile's recipe.
    """

    def __init__(self, target: Target) -> None:
        self.target = target


class Target:
    def __init__(self, profile, *, recorder: Callable[[Exchange], None] | None = None,
                 stores: dict | None = None, guard: Callable[[Any], None] | None = None,
                 keep_artifacts: bool = False, mail: Callable[[str], list] | None = None) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self.profile = profile
        self.name = profile.name
        self.base_url = profile.base_url.rstrip("/") + "/"
        self.allowed_hosts = list(profile.allowed_hosts)
        self.recorder = recorder
        # Called with the subject before any operation other than its creation: the ledger
        # must say we created it (privacy_checks/safety.py), or nothing is sent.
        self.guard = guard
        self.exchanges: list[Exchange] = []
        self.stores = stores or {}
        # captured mail to one address (observe/smtp.py through the capture client), for mail steps
        self.mail = mail
        self.request_timeout = float(profile.timeouts.get("request", 10))
        self.operation_timeout = float(profile.timeouts.get("operation", 120))
        self.session = requests.Session()
        # Never the environment's proxy on its own: the profile's `proxy:` says which (proxy.py).
        self.session.trust_env = False
        from .proxy import Proxy

        self.proxy = Proxy.from_profile(profile)
        tls = profile.tls or {}
        if tls.get("verify") is False:
            self.session.verify = False
        elif tls.get("ca_bundle"):
            import os

            if not os.path.exists(tls["ca_bundle"]):
                raise TargetError(f"{profile.name}: tls.ca_bundle {tls['ca_bundle']} does not exist")
            self.session.verify = tls["ca_bundle"]
        retry = _retry_class()(
            total=None, connect=2, read=0, status=2, other=0, redirect=0,
            allowed_methods=IDEMPOTENT, status_forcelist=(429, 502, 503, 504),
            backoff_factor=0.2, backoff_max=2.0, respect_retry_after_header=True, raise_on_status=False)
        retry.max_retry_after = min(5.0, self.request_timeout)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._auth_host = (urlsplit(self.base_url).hostname or "").lower()
        # command steps' output directories: removed by close() unless --keep-artifacts
        self.artifacts: str | None = None
        self.keep_artifacts = keep_artifacts
        self._oauth_tokens: dict[str, tuple[str, float]] = {}
        self.adapter = None
        if profile.adapter:
            mod_name, _, cls_name = profile.adapter.partition(":")
            try:
                cls = getattr(importlib.import_module(mod_name), cls_name)
            except (ImportError, AttributeError) as exc:
                raise TargetError(f"{profile.name}: adapter {profile.adapter!r} cannot be loaded: {exc}") from None
            self.adapter = cls(self)

    # -- templates ----------------------------------------------------------------------------
    def render(self, value: Any, ctx: dict, *, url_encode: bool = False) -> Any:
        if isinstance(value, dict):
            return {k: self.render(v, ctx) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, ctx) for v in value]
        if not isinstance(value, str):
            return value
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole and not url_encode:
            # A lone placeholder keeps its type, so a captured integer id stays an integer.
            return self._resolve(whole.group(1), ctx)

        def sub(m: re.Match) -> str:
            v = self._resolve(m.group(1), ctx)
            text = "" if v is None else str(v)
            return quote(text, safe="") if url_encode else text

        return _TEMPLATE.sub(sub, value)

    def _resolve(self, expr: str, ctx: dict) -> Any:
        if expr == "uuid":
            return str(uuid.uuid4())
        if expr == "now":
            return datetime.now(UTC).isoformat()
        root, _, rest = expr.partition(".")
        if root not in ctx and root in ("decoy", "control"):
            raise TargetError(f"template '{{{{ {expr} }}}}': the operation runs without a {root} here (only the "
                              "procedures' 'interact' runs with the decoy)")
        if root not in ctx:
            raise TargetError(f"template '{{{{ {expr} }}}}': {root!r} has no value here (`privacy-checks lint` "
                              "says which names each step can use)")
        value = lookup(ctx[root], rest) if rest else ctx[root]
        if value is None:
            raise TargetError(f"template '{{{{ {expr} }}}}' has no value (was it captured by an earlier step?)")
        return value

    # -- operations ---------------------------------------------------------------------------
    def has_operation(self, name: str) -> bool:
        return self.profile.operation(name) is not None or (
            self.adapter is not None and type(self.adapter).__dict__.get(name) is not None)

    def run(self, name: str, subject=None, captured: dict | None = None, *,
            extra_headers: dict | None = None, params: dict | None = None,
            others: dict | None = None) -> OperationResult:
        """Run operation `name` for `subject`; captured values are merged into `captured`.

        `others` maps roles ("decoy", "control") to the procedure's other subjects: templates
        name them (`{{ decoy.captured.user_id }}`) and a step `as: decoy` acts with their
        credentials."""
        captured = captured if captured is not None else (subject.captured if subject is not None else {})
        others = {k: v for k, v in (others or {}).items() if v is not None}
        op = self.profile.operation(name)
        steps = (op or {}).get("steps") or []
        # reading our own SMTP capture touches nothing on the target, so a removed subject's mail may be read
        mail_only = bool(steps) and all("mail" in step for step in steps)
        if subject is not None and self.guard is not None and name != "create_subject" and not mail_only:
            self.guard(subject)
        for other in {id(o): o for o in others.values() if o is not subject}.values():
            if self.guard is not None:
                self.guard(other)
        started = datetime.now(UTC)
        first_exchange = len(self.exchanges)
        if self.adapter is not None and type(self.adapter).__dict__.get(name) is not None:
            reply = self._adapter_call(name, subject, captured, params, others)
            if reply is not None:
                _remember_captured(reply.captured)
                captured.update(reply.captured)
                return OperationResult(name, captured, reply.last or StepResult(), self.exchanges[first_exchange:],
                                       started, datetime.now(UTC), parts=dict(reply.parts))
        if op is None:
            raise TargetError(f"{self.name}: the profile declares no operation {name!r}")
        deadline = time.monotonic() + self.operation_timeout
        last = StepResult()
        parts: dict[str, StepResult] = {}
        for index, step in enumerate(op.get("steps", [])):
            where = f"operation {name!r} step {index + 1}"
            role = step.get("as", op.get("as", "subject"))
            actor = subject if role == "subject" else others.get(role)
            if role != "subject" and actor is None:
                raise TargetError(f"{where} runs as the {role}, but this procedure has no {role} "
                                  "(only 'interact' runs with the decoy)")
            ctx = self.context(subject, captured, params=params, others=others)
            if "sql" in step:
                last = self._sql_step(step, ctx, where)
            elif "command" in step:
                last = self._command_step(step, ctx, where, name, index)
                captured["output_dir"] = last.output_dir
            elif "mail" in step:
                last = self._mail_step(step, ctx, where, deadline)
                if last.json is None:
                    continue  # `required: false` and nothing arrived: nothing to capture
            else:
                acting = captured if actor is subject else actor.captured
                last = self._http_step(step, ctx, where, deadline, actor, acting, extra_headers or {})
            for key, source in (step.get("capture") or {}).items():
                value = self._capture(source, last)
                if value is None:
                    raise TargetError(f"{where} ({last.describe()}): capture {key!r} from {source!r} found nothing; "
                                      f"{'body' if last.kind == 'HTTP' else 'output'}: {redact_text(last.text)[:300]}")
                captured[key] = value
                _remember_captured({key: value})
            if step.get("export_part"):
                parts[step["export_part"]] = last
        return OperationResult(name, captured, last, self.exchanges[first_exchange:], started, datetime.now(UTC),
                               parts=parts)

    def _adapter_call(self, name: str, subject, captured: dict, params: dict | None,
                      others: dict) -> AdapterResult | None:
        import inspect

        method = getattr(self.adapter, name)
        accepts = inspect.signature(method).parameters
        kwargs = {k: v for k, v in (("params", params or {}), ("others", others)) if k in accepts}
        try:
            reply = method(subject, captured, **kwargs)
        except NotImplementedError:
            return None
        if reply is None or isinstance(reply, dict):
            return AdapterResult(captured=dict(reply or {}))
        if isinstance(reply, AdapterResult):
            return reply
        raise TargetError(f"adapter {self.profile.adapter}: {name}() returned {type(reply).__name__}; an adapter "
                          "operation returns a dict of captured values or an AdapterResult")

    def context(self, subject, captured: dict, *, params: dict | None = None, others: dict | None = None) -> dict:
        """The names a step's templates are filled from (docs/profile.md, "Templates")."""
        split = urlsplit(self.base_url)
        ctx: dict[str, Any] = {
            "subject": subject.template_context() if subject is not None else {},
            "captured": captured, "params": params or {},
            "target": {"origin": f"{split.scheme}://{split.netloc}", "base_url": self.profile.base_url}}
        for role, other in (others or {}).items():
            ctx[role] = {**other.template_context(), "captured": other.captured}
        return ctx

    def condition(self, name: str, source: str, result: StepResult) -> bool:
        from .conditions import compile_condition

        return bool(compile_condition(source).evaluate(result.context()))

    # -- step kinds ---------------------------------------------------------------------------
    def _http_step(self, step: dict, ctx: dict, where: str, deadline: float, subject, captured: dict,
                   extra_headers: dict) -> StepResult:
        method = step["method"].upper()
        path = self.render(step["path"], ctx, url_encode=True)
        url = urljoin(self.base_url, path.lstrip("/")) if not re.match(r"^https?://", path) else path
        query = {k: self.render(v, ctx) for k, v in (step.get("query") or {}).items()}
        headers = {k: str(self.render(v, ctx)) for k, v in (step.get("headers") or {}).items()}
        for key, value in extra_headers.items():
            headers = {k: v for k, v in headers.items() if k.lower() != key.lower()}
            if value is not None:  # None takes the step's header away (GPC's positive control)
                headers[key] = value
        ip_header = (self.profile.subject or {}).get("ip_header")
        if ip_header and subject is not None and subject.fields.get("ip_address") \
                and ip_header.lower() not in {k.lower() for k in headers}:
            # subject.ip_header: every request made for the subject says where it came from, as
            # a proxy in front of the target would, so the subject's address lands where the
            # target keeps client addresses (a step that sets the header itself wins)
            headers[ip_header] = str(subject.fields["ip_address"])
        body_kwargs: dict[str, Any] = {}
        if "json" in step:
            body_kwargs["json"] = self.render(step["json"], ctx)
        elif "body" in step:
            body = step["body"] if isinstance(step["body"], bytes) else str(self.render(step["body"], ctx))
            body_kwargs["data"] = body.encode("utf-8") if isinstance(body, str) else body
            if step.get("content_type"):
                headers.setdefault("Content-Type", step["content_type"])
        elif "form" in step:
            body_kwargs["data"] = self.render(step["form"], ctx)
        if step.get("files"):
            body_kwargs["files"] = [self._upload(f, ctx, subject) for f in step["files"]]
        auth_name = step.get("auth")
        expect = step.get("expect") or [200, 201, 202, 204]
        timeout = float(step.get("timeout", self.request_timeout))
        poll = step.get("poll")
        poll_deadline = time.monotonic() + float(poll.get("timeout", 30)) if poll else 0.0
        while True:
            auth_headers = self.auth_headers(auth_name, subject, captured, where) if auth_name else {}
            result = self.request(method, url, params=query, headers={**headers, **auth_headers},
                                  timeout=timeout, where=where, deadline=deadline,
                                  follow_redirects=step.get("follow_redirects", True), **body_kwargs)
            if result.status not in expect:
                raise UnexpectedStatus(f"{where} ({method} {result.url}): expected status {expect}, got "
                                       f"{result.status}; body: {redact_text(result.text)[:300]}", result.status)
            if not poll:
                return result
            if self.condition(where, poll["until"], result):
                return result
            if time.monotonic() >= min(poll_deadline, deadline):
                body = redact_text(result.text)[:300]
                raise PollTimeout(
                    f"{where} ({method} {result.url}): condition {poll['until']!r} still false after "
                    f"{poll.get('timeout', 30)} s; last status {result.status}, last body: {body}",
                    result.status, body)
            time.sleep(float(poll.get("interval", 1.0)))

    def _upload(self, spec: dict, ctx: dict, subject) -> tuple[str, tuple[str, bytes, str]]:
        """One multipart file part: (field, (file name, bytes, content type))."""
        from . import uploads

        # a generated file carries the values of whoever uploads it (the decoy, in a step `as: decoy`)
        values = subject.template_context() if subject is not None else dict(ctx.get("subject") or {})
        if "generate" in spec:
            kind = spec["generate"]
            content = uploads.generate(kind, values)
            name = str(self.render(spec["filename"], ctx)) if spec.get("filename") else uploads.default_filename(
                kind, values)
            ctype = spec.get("content_type") or uploads.CONTENT_TYPES[kind]
        else:
            raw = spec["content"]
            content = raw if isinstance(raw, bytes) else str(self.render(raw, ctx)).encode("utf-8")
            name = str(self.render(spec.get("filename") or spec["field"], ctx))
            ctype = spec.get("content_type") or "application/octet-stream"
        return spec["field"], (name, content, ctype)

    def request(self, method: str, url: str, *, where: str = "request", timeout: float | None = None,
                deadline: float | None = None, follow_redirects: bool = True, **kwargs: Any) -> StepResult:
        """One exchange (following allowed redirects by hand), recorded as evidence."""
        import requests

        timeout = timeout or self.request_timeout
        for _hop in range(_MAX_REDIRECTS + 1):
            host = urlsplit(url).hostname or ""
            if not host_allowed(host, self.allowed_hosts):
                raise TargetError(f"{where}: refused to contact {url}: host {host!r} is not in allowed_hosts "
                                  f"{self.allowed_hosts}")
            headers = dict(kwargs.pop("headers", None) or {})
            if host.lower() != self._auth_host:
                # Credentials were configured for the target's host only.
                headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
            if deadline is not None and time.monotonic() > deadline:
                raise TargetError(f"{where}: the operation's time budget ({self.operation_timeout:.0f} s) ran out "
                                  f"before {method} {url}")
            started = datetime.now(UTC)
            t0 = time.monotonic()
            try:
                resp = self.session.request(method, url, headers=headers, timeout=(min(5.0, timeout), timeout),
                                            allow_redirects=False, proxies=self.proxy.requests_proxies(url), **kwargs)
            except requests.exceptions.SSLError as exc:
                raise TargetError(f"{where}: TLS failure talking to {url}: certificate not trusted for {host} "
                                  f"or handshake failed ({_short(exc)})") from None
            except requests.exceptions.Timeout:
                raise TargetError(f"{where}: {method} {url} timed out after {timeout:.0f} s") from None
            except requests.exceptions.ConnectionError as exc:
                if "timed out" in str(exc):
                    raise TargetError(f"{where}: {method} {url} timed out after {timeout:.0f} s") from None
                raise TargetError(f"{where}: cannot reach {url} ({_short(exc)})") from None
            except (requests.exceptions.RequestException, OSError) as exc:
                raise TargetError(f"{where}: {method} {url} failed: {_short(exc)}") from None
            exchange = Exchange.from_response(resp, started=started, elapsed=time.monotonic() - t0)
            self.exchanges.append(exchange)
            if self.recorder:
                self.recorder(exchange)
            if follow_redirects and resp.is_redirect and resp.headers.get("Location"):
                url = urljoin(resp.url, resp.headers["Location"])
                if resp.status_code in (301, 302, 303) and method != "HEAD":
                    method = "GET"
                    kwargs.pop("json", None)
                    kwargs.pop("data", None)
                kwargs["headers"] = headers
                continue
            return _step_result(resp)
        raise TargetError(f"{where}: more than {_MAX_REDIRECTS} redirects starting at {url}")

    def auth_headers(self, name: str, subject, captured: dict, where: str) -> dict[str, str]:
        """Public because other observers need the same credentials, for the target's base host only."""
        if name == "none":
            return {}
        spec = (self.profile.auth or {}).get(name)
        if spec is None:
            raise TargetError(f"{where}: auth {name!r} is not declared in the profile")
        ctx = self.context(subject, captured)
        kind = spec.get("type")
        if kind == "bearer":
            token_tpl = spec["token"]
            if "captured." in token_tpl and not _has_capture(token_tpl, captured) and self.has_operation("login"):
                # Act as the subject: log in once and keep the token it captured.
                self.run("login", subject, captured)
            return {"Authorization": f"Bearer {self.render(token_tpl, ctx)}"}
        if kind == "header":
            return {spec["name"]: str(self.render(spec["value"], ctx))}
        if kind == "basic":
            import base64

            raw = f"{self.render(spec['username'], ctx)}:{self.render(spec['password'], ctx)}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if kind == "oauth2_client_credentials":
            return {"Authorization": f"Bearer {self._oauth_token(name, spec, where)}"}
        raise TargetError(f"{where}: auth {name!r} has unknown type {kind!r}")

    def _oauth_token(self, name: str, spec: dict, where: str) -> str:
        token, expires = self._oauth_tokens.get(name, ("", 0.0))
        if token and time.monotonic() < expires - 30:
            return token
        data = {"grant_type": "client_credentials"}
        for key in ("scope", "audience"):
            if spec.get(key):
                data[key] = spec[key]
        token_host = (urlsplit(spec["token_url"]).hostname or "").lower()
        if not host_allowed(token_host, self.allowed_hosts):
            raise TargetError(f"{where}: token_url host {token_host!r} is not in allowed_hosts")
        import requests

        try:
            resp = self.session.post(spec["token_url"], data=data, auth=(spec["client_id"], spec["client_secret"]),
                                     timeout=(5.0, self.request_timeout), allow_redirects=False,
                                     proxies=self.proxy.requests_proxies(spec["token_url"]))
        except requests.exceptions.RequestException as exc:
            raise TargetError(f"{where}: cannot obtain an OAuth2 token from {spec['token_url']}: {_short(exc)}") from None
        self.exchanges.append(Exchange.from_response(resp, started=datetime.now(UTC), elapsed=0.0))
        if resp.status_code != 200:
            raise TargetError(f"{where}: OAuth2 token endpoint {spec['token_url']} answered {resp.status_code}")
        body = resp.json()
        remember_secret(body.get("access_token"))
        self._oauth_tokens[name] = (body["access_token"], time.monotonic() + float(body.get("expires_in", 300)))
        return body["access_token"]

    def _sql_step(self, step: dict, ctx: dict, where: str) -> StepResult:
        store = self.stores.get(step["store"])
        if store is None:
            raise TargetError(f"{where}: SQL step names store {step['store']!r}, which the profile does not declare")
        params = {k: self.render(v, ctx) for k, v in (step.get("params") or {}).items()}
        return self.sql(step["store"], step["sql"], params, where=where)

    def sql(self, store_name: str, statement: str, params: dict | None = None, *, where: str = "SQL") -> StepResult:
        """Run one statement on a declared database store, in its own transaction."""
        import sqlalchemy as sa

        store = self.stores.get(store_name)
        if store is None or not store.get("url"):
            raise TargetError(f"{where}: no database store named {store_name!r} is declared")
        try:
            engine = sa.create_engine(store["url"])
            try:
                with engine.begin() as conn:
                    res = conn.execute(sa.text(statement), params or {})
                    rows = [dict(r) for r in res.mappings().all()] if res.returns_rows else []
                    count = len(rows) if res.returns_rows else res.rowcount
            finally:
                engine.dispose()
        except sa.exc.SQLAlchemyError as exc:
            raise TargetError(f"{where}: SQL on store {store_name!r} failed: {_short(exc)}") from None
        return StepResult(rows=rows, json=rows[0] if rows else None, rowcount=count, method="SQL", url=store_name)

    def _command_step(self, step: dict, ctx: dict, where: str, op: str, index: int) -> StepResult:
        """Run a program in the profile's directory, with a fresh `{{ output_dir }}` of its own."""
        import os

        out_dir = self.output_dir(f"{op}-{index + 1}")
        ctx = {**ctx, "output_dir": out_dir}
        argv = [str(self.render(a, ctx)) for a in step["command"]]
        env = {**os.environ, **{k: str(self.render(v, ctx)) for k, v in (step.get("env") or {}).items()}}
        stdin = str(self.render(step["stdin"], ctx)) if "stdin" in step else None
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=float(step["timeout"]),
                                  cwd=self.profile.path.parent, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{where}: command {argv[0]!r} did not finish within {step['timeout']} s") from None
        except OSError as exc:
            raise TargetError(f"{where}: command {argv[0]!r} could not start in {self.profile.path.parent}: "
                              f"{exc.strerror or exc}") from None
        if proc.returncode != 0:
            raise TargetError(f"{where}: command {argv[0]!r} exited {proc.returncode}: "
                              f"{redact_text(proc.stderr)[-300:]}")
        result = StepResult(status=proc.returncode, text=proc.stdout, stderr=proc.stderr, method="COMMAND",
                            url=argv[0], output_dir=out_dir)
        try:
            result.json = json.loads(proc.stdout)
        except ValueError:
            pass
        return result

    def output_dir(self, label: str) -> str:
        """A fresh directory for one command step's execution, under this run's artifacts."""
        import tempfile

        if self.artifacts is None:
            self.artifacts = tempfile.mkdtemp(prefix="privacy-checks-artifacts-")
        return tempfile.mkdtemp(prefix=f"{label}-", dir=self.artifacts)

    def _mail_step(self, step: dict, ctx: dict, where: str, deadline: float) -> StepResult:
        """Wait for the newest captured mail to `to` that satisfies `match`; its headers, decoded
        text and envelope (json: to, from, subject, date, received_at) are what the step captures."""
        from .conditions import compile_condition

        spec = step["mail"]
        to = str(self.render(spec["to"], ctx)).strip().lower()
        match = spec.get("match")
        cond = compile_condition(str(self.render(match, ctx))) if match else None
        timeout = float(spec["timeout"])
        if self.mail is None:
            raise TargetError(f"{where}: a mail step needs the SMTP capture server; set capture.smtp in the profile")
        stop = min(time.monotonic() + timeout, deadline)
        while True:
            mails = self.mail(to)
            found = [c for c in mails if cond is None or cond.evaluate(c.context())]
            if found:
                return _mail_result(found[-1])
            if time.monotonic() >= stop:
                break
            time.sleep(0.1)
        if spec.get("required", True) is False:
            return StepResult(method="MAIL", url=f"mailto:{to}")
        seen = "; ".join(f"{c.headers.get('Subject', '(no subject)')!r} at {c.received_at}" for c in mails[-5:])
        raise TargetError(f"{where}: no mail to {to}" + (f" matching {match!r}" if match else "")
                          + f" reached the SMTP capture within {timeout:.0f} s"
                          + (f"; {len(mails)} other(s) to that address: {redact_text(seen)}" if mails else
                             "; none at all to that address"))

    def _capture(self, source: str, result: StepResult) -> Any:
        if source == "status":
            return result.status
        if source == "rowcount":
            return result.rowcount
        if source in ("stdout", "stderr"):
            return (result.text if source == "stdout" else result.stderr).strip() or None
        if source == "output_dir":
            return result.output_dir
        if source.startswith("json."):
            return lookup(result.json, source[5:])
        if source.startswith("row."):
            return lookup(result.rows[0] if result.rows else None, source[4:])
        if source.startswith("header."):
            name = source[7:].lower()
            return next((v for k, v in result.headers.items() if k.lower() == name), None)
        if source.startswith("cookie."):
            return _cookie(result, source[7:])
        if source.startswith("regex:"):
            m = re.search(source[6:], result.text or "")
            return (m.group(1) if m.groups() else m.group(0)) if m else None
        raise TargetError(f"unknown capture source {source!r}")

    def close(self) -> None:
        """Close connections; remove the command steps' output directories unless they are kept."""
        import shutil

        self.session.close()
        if self.artifacts and not self.keep_artifacts:
            shutil.rmtree(self.artifacts, ignore_errors=True)
            self.artifacts = None


def _remember_captured(values: dict) -> None:
    """A captured value whose name looks like a token, session, password, key or code is a live
    secret: it must not reach any output, an error message or a traceback included."""
    for key, value in values.items():
        if SECRET_NAME.search(str(key)):
            remember_secret(value)


def _cookie(result: StepResult, name: str) -> str | None:
    raw = result.headers.get("Set-Cookie") or ""
    m = re.search(rf"(?:^|[,;]\s*){re.escape(name)}=([^;,]*)", raw)
    return m.group(1) if m else None


def _has_capture(template: str, captured: dict) -> bool:
    return all(lookup(captured, m.group(1).partition(".")[2]) is not None
               for m in _TEMPLATE.finditer(template) if m.group(1).startswith("captured."))


def _mail_result(cap) -> StepResult:
    import email.utils

    date = cap.headers.get("Date")
    try:
        sent = email.utils.parsedate_to_datetime(date).isoformat() if date else None
    except (TypeError, ValueError):
        sent = None
    envelope = {"to": cap.path[len("mailto:"):], "from": cap.headers.get("X-Envelope-From"),
                "subject": cap.headers.get("Subject"), "date": sent, "received_at": cap.received_at}
    return StepResult(status=None, headers=dict(cap.headers), json=envelope, text=cap.body, method="MAIL",
                      url=cap.path)


def _step_result(resp) -> StepResult:
    try:
        body = resp.json() if resp.content else None
    except ValueError:
        body = None
    return StepResult(status=resp.status_code, headers=dict(resp.headers), json=body, text=resp.text,
                      url=resp.url, method=resp.request.method)


def _short(exc: Exception) -> str:
    text = str(exc)
    # urllib3 wraps the real reason in layers of reprs; the last clause is what a user needs.
    m = re.search(r"\] ([^'\]]+)'?\)*$", text) or re.search(r"(Failed to establish a new connection: .*?)'", text)
    text = m.group(1) if m else text
    return redact_headers_in_text(text)[:300]


def redact_headers_in_text(text: str) -> str:
    return re.sub(r"(?i)(authorization|cookie)[=:]\s*\S+", r"\1: [REDACTED]", text)


__all__ = ["Adapter", "AdapterResult", "Target", "OperationResult", "StepResult", "host_allowed", "lookup", "redact_headers",
           "TargetError"]
