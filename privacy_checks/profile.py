"""Loading a target profile: YAML, `${VAR}` substitution, JSON Schema validation, clear errors.

A profile is written by people and read by CI, so every mistake in it becomes one line naming
the file and the field (`staging.yaml: operations.delete.steps[0].method: ...`), all of them
at once, never a traceback. The schema catches shape; the checks after it catch what a schema
cannot say: hosts outside the allow-list, references to undeclared auth or stores, conditions
that do not parse, secrets written into the file.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from .conditions import ConditionError, compile_condition
from .errors import ProfileError

__all__ = ["DEFAULT_EXPECT", "DEFAULT_TIMEOUTS", "RIGHTS", "Profile", "host_allowed", "lint", "load_profile"]

RIGHTS = ("delete", "know", "correct", "opt_out", "limit", "object", "portability", "gpc")
DEFAULT_EXPECT = (200, 201, 202, 204)
DEFAULT_TIMEOUTS: dict[str, float] = {"request": 10.0, "operation": 120.0, "propagation": 60.0}

# Fields whose value is a credential: a literal here would end up in version control.
_SECRET_KEYS = ("token", "password", "client_secret")
_STORE_SECRET_KEYS = ("secret_access_key", "session_token")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_REF = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_RUNTIME_TEMPLATE = re.compile(r"\{\{.*?\}\}")
_PLAIN_KEY = re.compile(r"[A-Za-z_][\w-]*")

JsonPath = tuple[str | int, ...]
Problem = tuple[JsonPath, str]


class Profile:
    """A loaded, valid profile. `data` is the substituted dict; the accessors add defaults."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def __repr__(self) -> str:
        return f"Profile({self.name!r}, {str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def base_url(self) -> str:
        return self.data["base_url"]

    @property
    def allowed_hosts(self) -> list[str]:
        return list(self.data["allowed_hosts"])

    def host_allowed(self, host: str) -> bool:
        return host_allowed(host, self.data["allowed_hosts"])

    @property
    def operations(self) -> dict[str, dict]:
        return self.data.get("operations") or {}

    def operation(self, name: str) -> dict | None:
        return self.operations.get(name)

    @property
    def stores(self) -> list[dict]:
        return list(self.data.get("stores") or [])

    def store(self, name: str) -> dict | None:
        return next((s for s in self.stores if s["name"] == name), None)

    @property
    def sinks(self) -> list[dict]:
        return list(self.data.get("sinks") or [])

    @property
    def auth(self) -> dict[str, dict]:
        return self.data.get("auth") or {}

    @property
    def subject(self) -> dict:
        return self.data.get("subject") or {}

    @property
    def timeouts(self) -> dict[str, float]:
        """Seconds for `request`, `operation` and `propagation`, defaults filled in."""
        return {**DEFAULT_TIMEOUTS, **{k: float(v) for k, v in (self.data.get("timeouts") or {}).items()}}

    @property
    def severity(self) -> dict[str, str]:
        """Check-id pattern -> critical | normal | minor: the profile's own weighting of findings."""
        return dict(self.data.get("severity") or {})

    @property
    def not_offered(self) -> dict[str, str]:
        return dict(self.data.get("not_offered") or {})

    @property
    def lacks(self) -> dict[str, str]:
        """What the profile states the target does not have, with the reason: `recipients`,
        `export_categories`, `verification` (the checks that need it report that reason)."""
        return dict(self.data.get("lacks") or {})

    @property
    def retention_exceptions(self) -> list[dict]:
        return list(self.data.get("retention_exceptions") or [])

    @property
    def identifiers(self) -> list[dict]:
        """Declared identifier columns (observe/stores/sql_links.py)."""
        return list(self.data.get("identifiers") or [])

    @property
    def tls(self) -> dict[str, Any]:
        """`ca_bundle` (absolute path or None) and `verify` (default true)."""
        tls = self.data.get("tls") or {}
        bundle = tls.get("ca_bundle")
        return {"ca_bundle": str(self.resolve(bundle)) if bundle else None, "verify": tls.get("verify", True)}

    @property
    def transport(self) -> dict[str, Any]:
        """`http_url` (the plain-http address, which may only redirect) and `session_cookies` (names)."""
        return dict(self.data.get("transport") or {})

    @property
    def adapter(self) -> str | None:
        return self.data.get("adapter")

    @property
    def capture(self) -> dict:
        return self.data.get("capture") or {}

    @property
    def gpc_supported(self) -> bool | None:
        return (self.data.get("gpc") or {}).get("supported")

    @property
    def browser(self) -> dict[str, Any]:
        """The `browser:` section (pages a visitor opens; suites/web), or {} when there is none."""
        return dict(self.data.get("browser") or {})

    @property
    def policy(self) -> Path | None:
        policy = self.data.get("policy")
        return self.resolve(policy) if policy else None

    def resolve(self, path: str) -> Path:
        """A path from the profile; relative ones are relative to the profile's directory (or, for
        a profile that is a symbolic link, to the linked file's, when only that path exists)."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        near = self.path.parent / p
        if not near.exists() and self.path.is_symlink() and (self.path.resolve().parent / p).exists():
            return self.path.resolve().parent / p
        return near


def load_profile(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Profile:
    """Load and validate a profile; raises ProfileError carrying every problem found."""
    profile, messages = _load(Path(path), os.environ if env is None else env)
    if messages:
        raise _error(messages)
    assert profile is not None
    return profile


def lint(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> list[str]:
    """Every problem with the profile as `<file>: <path>: <message>` lines; empty when valid."""
    return _load(Path(path), os.environ if env is None else env)[1]


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether `host` is listed; `*.example.com` covers subdomains, not example.com itself."""
    host = (host or "").strip("[]").rstrip(".").lower()
    for pattern in allowed:
        pattern = pattern.strip("[]").rstrip(".").lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def _error(messages: list[str]) -> ProfileError:
    err = ProfileError("\n".join(messages))
    err.messages = list(messages)  # type: ignore[attr-defined]
    return err


def _load(path: Path, env: Mapping[str, str]) -> tuple[Profile | None, list[str]]:
    fname = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"{fname}: cannot read: not UTF-8 text (byte {exc.start})"]
    except OSError as exc:
        return None, [f"{fname}: cannot read: {exc.strerror or exc}"]
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader: tags cannot build Python objects
    except yaml.MarkedYAMLError as exc:
        return None, [f"{fname}: {_yaml_problem(exc)}"]
    except yaml.YAMLError as exc:
        return None, [f"{fname}: invalid YAML: {exc}"]
    if not isinstance(raw, dict):
        found = "an empty file" if raw is None else _describe(raw)
        return None, [f"{fname}: (root): a profile is a mapping of sections (name, base_url, ...), found {found}"]

    problems: list[Problem] = []
    unresolved: set[JsonPath] = set()
    data = _substitute(raw, (), env, problems, unresolved)
    problems += _schema_problems(data, unresolved)
    problems += _semantic_problems(data, raw, unresolved)
    problems += _name_problems(data, unresolved)

    messages: list[str] = []
    for p, message in problems:
        line = f"{fname}: {_format_path(p)}: {message}"
        if line not in messages:
            messages.append(line)
    if messages:
        return None, messages
    return Profile(path.absolute(), data), []


# -- YAML --------------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and keeps every key as written.

    PyYAML keeps the last of two equal keys without a word, which hides a second `delete:`
    operation; and `404:` or `on:` as keys would become an int and a bool, which JSON Schema
    and the runtime expect as text.
    """


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        if key_node.value in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key_node.value!r}",
                                                    key_node.start_mark)
        seen.add(key_node.value)
    loader.flatten_mapping(node)
    mapping: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value, not a list or mapping",
                                                    key_node.start_mark)
        mapping[key_node.value] = loader.construct_object(value_node, deep=deep)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}:{mark.column + 1}: " if mark else ""
    problem = exc.problem or exc.context or "invalid YAML"
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return f"{where}invalid YAML: {problem}{context}"


# -- ${VAR} substitution -----------------------------------------------------------------------

def _substitute(value: Any, path: JsonPath, env: Mapping[str, str], problems: list[Problem],
                unresolved: set[JsonPath]) -> Any:
    # After parsing, on values only: a variable's content can never become YAML structure.
    if isinstance(value, dict):
        return {k: _substitute(v, (*path, k), env, problems, unresolved) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*path, i), env, problems, unresolved) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    failed = False

    def replace(m: re.Match[str]) -> str:
        nonlocal failed
        if m.group(0) == "$${":
            return "${"
        name = m.group(1)
        if m.group(2) is None:
            problems.append((path, "'${' is not closed; write ${NAME}, or $${ for a literal ${"))
        elif not _ENV_NAME.fullmatch(name):
            problems.append((path, f"'${{{name}}}' is not a variable reference; names are letters, digits and _ "
                                   "(write $${ for a literal ${)"))
        elif name in env:
            return env[name]
        else:
            problems.append((path, f"environment variable {name!r} is not set"))
        failed = True
        return m.group(0)

    result = _ENV_REF.sub(replace, value)
    if failed:
        unresolved.add(path)
        return value
    return result


def _from_environment(raw: Any) -> bool:
    if not isinstance(raw, str):
        return False
    refs = any(m.group(0) != "$${" for m in _ENV_REF.finditer(raw))
    return refs or bool(_RUNTIME_TEMPLATE.search(raw))


# -- schema ------------------------------------------------------------------------------------

@cache
def _validator() -> Draft202012Validator:
    text = resources.files("privacy_checks").joinpath("schemas", "profile.schema.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


def _path_key(path: Iterable[str | int]) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in path)


def _for_schema(value: Any, path: JsonPath, problems: list[Problem]) -> Any:
    """The data as JSON Schema sees it: bytes (YAML !!binary) only where a raw body may be."""
    if isinstance(value, dict):
        return {k: _for_schema(v, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_for_schema(v, (*path, i), problems) for i, v in enumerate(value)]
    if isinstance(value, bytes):
        if path and path[-1] in ("body", "content"):
            return "<bytes>"
        problems.append((path, "binary data (!!binary) is only allowed as a step's 'body' or a file's 'content'"))
        return "<bytes>"
    return value


def _schema_problems(data: dict, unresolved: set[JsonPath]) -> list[Problem]:
    out: list[Problem] = []
    data = _for_schema(data, (), out)
    errors = sorted(_validator().iter_errors(data), key=lambda e: (_path_key(e.absolute_path), e.message))
    for error in errors:
        if tuple(error.absolute_path) in unresolved:
            continue  # the value is still '${VAR}'; the missing variable is already reported
        out += _explain(error)
    return out


_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}


def _explain(error: ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom = (schema.get("x-errors") or {}).get(error.validator)
    if custom:
        return [(path, custom.replace("{instance}", _short(error.instance)))]
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties") or {})
        return [(path, f"unknown property {key!r}{_did_you_mean(key, known)}")
                for key in instance if key not in known]
    if kind == "required" and isinstance(instance, dict):
        return [(path, f"missing required property {name!r}") for name in value if name not in instance]
    if kind == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        return [(path, f"expected {' or '.join(_TYPE_WORDS.get(t, t) for t in wanted)}, found {_describe(instance)}")]
    if kind == "enum":
        return [(path, f"{_short(instance)} is not one of {value!r}")]
    if kind in ("anyOf", "oneOf") and error.context:
        return _explain(best_match(error.context))
    if kind == "minItems" and value == 1:
        return [(path, "must not be empty")]
    if kind == "uniqueItems":
        return [(path, "lists the same value twice")]
    return [(path, error.message)]


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return _short(value)
    return type(value).__name__


def _format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(root)"


# -- checks the schema cannot express -----------------------------------------------------------

def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _lookup_raw(raw: Any, path: JsonPath) -> Any:
    for part in path:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _semantic_problems(data: dict, raw: dict, unresolved: set[JsonPath]) -> list[Problem]:
    out: list[Problem] = []
    hosts = [h for h in _as_list(data.get("allowed_hosts")) if isinstance(h, str)]

    def check_host(path: JsonPath, url: Any) -> None:
        if not isinstance(url, str) or path in unresolved or not hosts:
            return
        try:
            host = urlsplit(url).hostname
        except ValueError as exc:
            out.append((path, f"{url!r} is not a valid URL: {exc}"))
            return
        if host and not host_allowed(host, hosts):
            out.append((path, f"host {host!r} is not in allowed_hosts"))

    def check_condition(path: JsonPath, source: Any) -> None:
        if isinstance(source, str) and path not in unresolved:
            try:
                compile_condition(source)
            except ConditionError as exc:
                out.append((path, str(exc)))

    check_host(("base_url",), data.get("base_url"))
    proxy = _as_dict(data.get("proxy"))
    check_host(("proxy", "url"), proxy.get("url"))
    if proxy.get("url") and proxy.get("from_environment"):
        out.append((("proxy",), "give either url or from_environment: true, not both"))
    raw_proxy = _lookup_raw(raw, ("proxy", "url"))
    if isinstance(raw_proxy, str) and "@" in raw_proxy and ":" in raw_proxy.split("@", 1)[0].split("//", 1)[-1] \
            and "${" not in raw_proxy.split("@", 1)[0]:
        out.append((("proxy", "url"), "the password must come from an environment variable (${VAR})"))

    auth = _as_dict(data.get("auth"))
    for name, spec in auth.items():
        if name == "none":
            out.append((("auth", name), "'none' is reserved: a step's 'auth: none' sends no credentials"))
        spec = _as_dict(spec)
        check_host(("auth", name, "token_url"), spec.get("token_url"))
        for key in _SECRET_KEYS:
            if key in spec and not _from_environment(_lookup_raw(raw, ("auth", name, key))):
                out.append((("auth", name, key), "secrets must come from environment variables (${VAR})"))

    stores: dict[str, dict] = {}
    for i, store in enumerate(_as_list(data.get("stores"))):
        store = _as_dict(store)
        name = store.get("name")
        if isinstance(name, str):
            if name in stores:
                out.append((("stores", i, "name"), f"another store is already named {name!r}"))
            stores.setdefault(name, store)
        if isinstance(store.get("url"), str) and ("stores", i, "url") not in unresolved:
            out += _store_url_problems(("stores", i, "url"), name, store["url"],
                                       _lookup_raw(raw, ("stores", i, "url")))
        for key in _STORE_SECRET_KEYS:  # an S3 store's credentials
            if key in store and not _from_environment(_lookup_raw(raw, ("stores", i, key))):
                out.append((("stores", i, key), "secrets must come from environment variables (${VAR})"))

    for op_name, op in _as_dict(data.get("operations")).items():
        op = _as_dict(op)
        check_condition(("operations", op_name, "gone_when"), op.get("gone_when"))
        for i, step in enumerate(_as_list(op.get("steps"))):
            step = _as_dict(step)
            where: JsonPath = ("operations", op_name, "steps", i)
            ref = step.get("auth")
            if isinstance(ref, str) and ref != "none" and ref not in auth:
                declared = f"declared: {', '.join(auth)}" if auth else "no auth is declared"
                out.append(((*where, "auth"), f"{ref!r} is not declared in auth ({declared})"))
            check_condition((*where, "poll", "until"), _as_dict(step.get("poll")).get("until"))
            check_condition((*where, "mail", "match"), _as_dict(step.get("mail")).get("match"))
            if "method" in step:
                path = step.get("path")
                if isinstance(path, str) and re.match(r"https?://", path):
                    check_host((*where, "path"), path)
            if "sql" in step and isinstance(step.get("store"), str):
                out += _store_reference((*where, "store"), step["store"], stores, "sql",
                                        "an SQL step needs a database store (an SQLAlchemy url)")
            for key, source in _as_dict(step.get("capture")).items():
                if isinstance(source, str) and source.startswith("regex:"):
                    try:
                        re.compile(source[6:])
                    except re.error as exc:
                        out.append(((*where, "capture", key), f"invalid regular expression: {exc}"))

    sink_names: set[str] = set()
    for i, sink in enumerate(_as_list(data.get("sinks"))):
        sink = _as_dict(sink)
        name = sink.get("name")
        if isinstance(name, str):
            if name in sink_names:
                out.append((("sinks", i, "name"), f"another sink is already named {name!r}"))
            sink_names.add(name)
        check_condition(("sinks", i, "deletion_notice"), sink.get("deletion_notice"))
        if isinstance(sink.get("store"), str):
            if "table" in sink or "query" in sink:
                need, why = "sql", "a sink's 'table' or 'query' is in a database store (an SQLAlchemy url)"
            elif "key" in sink:
                need, why = "keyed", "a sink's 'key' names Redis keys or S3 objects (a redis:// or s3:// url)"
            else:
                need, why = None, ""
            out += _store_reference(("sinks", i, "store"), sink["store"], stores, need, why)
        elif "table" in sink or "query" in sink or "key" in sink:
            out.append((("sinks", i), "'table', 'query' and 'key' need the sink's 'store'"))

    browser = _as_dict(data.get("browser"))
    check_host(("browser", "start_url"), browser.get("start_url"))
    if isinstance(browser.get("barrier"), str) and re.match(r"https?://", browser["barrier"]):
        check_host(("browser", "barrier"), browser["barrier"])
    for journey, steps in _as_dict(browser.get("journeys")).items():
        for i, step in enumerate(_as_list(steps)):
            step = _as_dict(step)
            where = ("browser", "journeys", journey, i)
            if isinstance(step.get("visit"), str) and re.match(r"https?://", step["visit"]):
                check_host((*where, "visit"), step["visit"])
            fill = _as_dict(step.get("fill"))
            selector = fill.get("selector")
            # a password typed into a page is a secret like any other: from the environment only
            if isinstance(selector, str) and "password" in selector.lower() and "value" in fill and \
                    not _from_environment(_lookup_raw(raw, (*where, "fill", "value"))):
                out.append(((*where, "fill", "value"), "a password typed into a page must come from an "
                                                       "environment variable (${VAR}) or a template "
                                                       "({{ subject.password }})"))

    lacks = _as_dict(data.get("lacks"))
    contradictions = {
        "recipients": ("sinks" if _as_list(data.get("sinks")) else None, "sinks are declared"),
        "export_categories": ("export" if "categories" in _as_dict(data.get("export")) else None,
                              "export.categories says where the export lists them"),
        "verification": ("operations" if any(op in _as_dict(data.get("operations")) for op in
                                             ("request_access", "fetch_code", "verify_request")) else None,
                         "request_access, fetch_code or verify_request is declared"),
    }
    for key, (present, why) in contradictions.items():
        if key in lacks and present:
            out.append((("lacks", key), f"the profile says the target lacks {key}, yet {why}"))

    from .subjects import CANARY_STRATEGIES, shortest_length

    subject = _as_dict(data.get("subject"))
    for field_name, spec in _as_dict(subject.get("strategies")).items():
        spec = _as_dict(spec)
        where = ("subject", "strategies", field_name)
        strategy = spec.get("strategy")
        for key in ("short", "max_length"):
            if key in spec and strategy not in CANARY_STRATEGIES:
                out.append(((*where, key), f"'{key}' applies to strategies {', '.join(CANARY_STRATEGIES)}, "
                                           f"not {strategy!r}"))
        limit = spec.get("max_length")
        if isinstance(limit, int) and strategy in CANARY_STRATEGIES:
            need = shortest_length(strategy, spec, str(subject.get("email_domain", "example.com")))
            if limit < need:
                out.append(((*where, "max_length"), f"{limit} is too short: strategy {strategy!r} needs at "
                                                    f"least {need} characters (with the short canary)"))

    for i, exc in enumerate(_as_list(data.get("retention_exceptions"))):
        exc = _as_dict(exc)
        if isinstance(exc.get("store"), str):
            if "table" in exc:
                need, why = "url", "a 'table' is in a database store (one with a url)"
            elif "file" in exc:
                need, why = ("files", "lake"), "a 'file' is in a file or lake store (one with files or lake)"
            elif "key" in exc:
                need, why = "keyed", "a 'key' is in a Redis or S3 store (a redis:// or s3:// url)"
            else:
                need, why = None, ""
            out += _store_reference(("retention_exceptions", i, "store"), exc["store"], stores, need, why)
        form = exc.get("form")
        if isinstance(form, str) and form not in retention_forms():
            # an exception whose form no finding carries would never match: a silent no-op
            out.append((("retention_exceptions", i, "form"),
                        f"{form!r} is not a form the sweep reports, so the exception would never match"
                        f"{_did_you_mean(form, retention_forms())}; forms: {_forms_listed()}"))
    out += _identifier_problems(data, stores)
    return out


def retention_forms() -> list[str]:
    """Every form a sweep finding can carry: the text forms and digests (observe/forms.py), each
    typed strategy's forms (observe/typed.py) and ``linked row``."""
    from .observe.forms import ALL_FORMS, LINKED_ROW
    from .observe.typed import forms_by_kind

    typed = [f for forms in forms_by_kind().values() for f in forms]
    return list(dict.fromkeys([*ALL_FORMS, *typed, LINKED_ROW]))


def _forms_listed() -> str:
    from .observe.forms import ALL_FORMS, LINKED_ROW
    from .observe.typed import forms_by_kind

    parts = [f"text {', '.join(ALL_FORMS)}"]
    parts += [f"{kind} {', '.join(forms)}" for kind, forms in forms_by_kind().items()]
    return "; ".join(parts + [LINKED_ROW])


def _identifier_problems(data: dict, stores: dict[str, dict]) -> list[Problem]:
    """identifiers: the captured value is captured by some operation, the stores are databases.
    Whether the columns exist is only known from the database itself (checked when the run starts)."""
    out: list[Problem] = []
    captured = {name for op in _as_dict(data.get("operations")).values()
                for step in _as_list(_as_dict(op).get("steps")) for name in _step_captures(_as_dict(step))}
    adapter = bool(data.get("adapter"))
    for i, ident in enumerate(_as_list(data.get("identifiers"))):
        ident = _as_dict(ident)
        name = ident.get("captured")
        if isinstance(name, str) and not adapter and name not in captured:
            known = f"captured: {', '.join(sorted(captured))}" if captured else "no operation captures anything"
            out.append((("identifiers", i, "captured"), f"no operation captures {name!r} ({known}){_did_you_mean(name, sorted(captured))}"))
        for j, store in enumerate(_as_list(ident.get("stores"))):
            if isinstance(store, str):
                out += _store_reference(("identifiers", i, "stores", j), store, stores, "sql",
                                        "identifier columns are in a database store (an SQLAlchemy url)")
    return out


def _store_reference(path: JsonPath, name: str, stores: dict[str, dict], need: str | tuple[str, ...] | None,
                     why: str) -> list[Problem]:
    if name not in stores:
        declared = f"declared: {', '.join(stores)}" if stores else "no stores are declared"
        return [(path, f"no store named {name!r} ({declared})")]
    needs = (need,) if isinstance(need, str) else need
    if needs and not any(_fits(stores[name], n) for n in needs):
        return [(path, f"store {name!r} does not fit: {why}")]
    return []


def _fits(store: dict, need: str) -> bool:
    """Whether a declared store is of the kind a reference needs: a key it has ("url", "files",
    "lake"), or the kind its url's scheme chooses ("sql"; "keyed": Redis or S3), as the run would."""
    if need not in ("sql", "keyed"):
        return need in store
    url = store.get("url")
    if not isinstance(url, str) or "lake" in store or "files" in store:
        return False
    from .observe.stores import StoreSpec, kind_of

    kind = kind_of(StoreSpec(name="?", url=url))
    return kind == "sql" if need == "sql" else kind in ("redis", "s3")


def _hide_password(url: str) -> str:
    # Works on URLs make_url refused too, so it cannot rely on their structure.
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme = re.match(r"[A-Za-z][\w+.-]*:/*", head)
    colon = head.find(":", scheme.end() if scheme else 0)
    return url if colon < 0 else f"{head[:colon + 1]}***@{tail}"


def _store_url_problems(path: JsonPath, name: Any, url: str, raw: Any) -> list[Problem]:
    from sqlalchemy.engine import make_url

    label = f"store {name!r}" if isinstance(name, str) else "store"
    if re.match(r"(s3|spark|sc)://|local\b", url):
        return []  # not SQLAlchemy URLs; the schema checks their shape, and they carry no password
    try:
        parsed = make_url(url)
    except Exception as exc:  # make_url raises ArgumentError or ValueError, with little detail
        detail = str(exc).split(" from given URL string")[0]
        return [(path, f"{label}: {_hide_password(url)!r} is not a valid SQLAlchemy URL ({detail})")]
    if parsed.password is None or not isinstance(raw, str):
        return []
    # A password that did not come from a variable was written into the file.
    marked = _ENV_REF.sub(lambda m: "${" if m.group(0) == "$${" else "PCQENVVAR", raw)
    try:
        raw_password = make_url(marked).password
    except Exception:
        return []  # the URL's shape itself comes from a variable
    if raw_password is not None and "PCQENVVAR" not in str(raw_password):
        return [(path, f"{label}: the password must come from an environment variable (${{VAR}})")]
    return []


# -- runtime templates and the names conditions read -------------------------------------------

_TEMPLATE_ANY = re.compile(r"\{\{(.*?)\}\}", re.S)
_TEMPLATE_EXPR = re.compile(r"\s*([A-Za-z_][\w.]*)\s*")  # what target.py fills in
_LOOKS_LIKE_NAME = re.compile(r"\s*[A-Za-z_][\w .\-\[\]]*\s*")
# Keys of a step whose strings are templates (capture sources, conditions and SQL text are not).
_TEMPLATED = ("path", "query", "headers", "json", "form", "body", "files", "params", "command", "env", "stdin",
              "mail")
TEMPLATE_ROOTS = ("subject", "captured", "params", "uuid", "now", "output_dir", "target", "decoy", "control")
TARGET_NAMES = ("origin", "base_url")
# What a step's result offers its captures and the conditions judged on it (docs/profile.md).
STEP_NAMES: dict[str, tuple[str, ...]] = {
    "HTTP": ("status", "headers", "json", "text", "url", "method", "path"),
    "SQL": ("row", "rows", "rowcount"),
    "command": ("status", "stdout", "stderr", "json", "output_dir"),
    "mail": ("headers", "text", "json", "path"),
}
# A captured mail, as a mail step's `match` sees it.
MAIL_NAMES = ("headers", "text", "path")
# A recipient's delivery, as a sink's deletion_notice condition sees it.
DELIVERY_NAMES = ("method", "path", "headers", "json", "text")
# Names people carry over from another step kind, and what they mean there.
_KIND_HINTS = {"SQL": {"json": "row", "status": "rowcount", "text": "row"},
               "command": {"text": "stdout", "exit_code": "status", "code": "status"},
               "HTTP": {"body": "text", "row": "json", "stdout": "text"}}


def step_kind(step: dict) -> str:
    return "SQL" if "sql" in step else "command" if "command" in step else "mail" if "mail" in step else "HTTP"


def _step_captures(step: dict) -> set[str]:
    names = {k for k in _as_dict(step.get("capture")) if isinstance(k, str)}
    if "command" in step:
        names.add("output_dir")  # every command step's directory is visible to later steps
    return names


def _strings_in(value: Any, path: JsonPath) -> Iterable[tuple[JsonPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings_in(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings_in(v, (*path, i))


class _Scope:
    """What the templates of one step can see."""

    def __init__(self, op: str, kind: str | None, have: set[str], fields: list[str], model,
                 all_captured: set[str], later: dict[str, int] | None = None, auth: bool = False) -> None:
        from .operations import use

        self.op, self.kind, self.have, self.fields, self.model = op, kind, have, fields, model
        self.use = use(op)
        self.all_captured = all_captured
        self.later = later or {}
        self.auth = auth  # an auth spec's template: only subject and captured are filled in there

    def check(self, expr: str) -> str | None:
        """None when `expr` will have a value at run time; otherwise what is wrong, with a fix."""
        root, _, rest = expr.partition(".")
        first = rest.split(".")[0]
        shown = f"'{{{{ {expr} }}}}'"
        if root in ("uuid", "now", "output_dir") and rest:
            return f"{shown}: {{{{ {root} }}}} takes no path"
        if root in ("uuid", "now"):
            return None
        if root == "output_dir":
            if self.kind != "command":
                return (f"{shown}: only a command step has an output directory; steps after it use "
                        "'{{ captured.output_dir }}'")
            return None
        if root == "target":
            if rest in TARGET_NAMES:
                return None
            return f"{shown}: the target offers {', '.join('target.' + n for n in TARGET_NAMES)}" + _did_you_mean(
                f"target.{rest}", [f"target.{n}" for n in TARGET_NAMES])
        if root in ("subject", "captured", "decoy", "control") and self.use.after is None:
            return f"{shown}: the suites run {self.op!r} without a subject; it sees only params"
        if root == "subject":
            return self._field(shown, rest, "subject")
        if root == "captured":
            return self._captured(shown, first)
        if root == "params":
            return self._params(shown, first)
        if root in ("decoy", "control"):
            if root not in self.use.others:
                return (f"{shown}: {self.op!r} runs with one subject; only 'interact' names the other subject "
                        "(decoy, also called control)")
            if first == "captured":
                name = rest.split(".")[1] if rest.count(".") else ""
                have = self.model.all_of("create_subject")
                if name in have or self.model.adapter:
                    return None
                return (f"{shown}: the {root} has run create_subject only, which captures "
                        f"{', '.join(sorted(have)) or 'nothing'}" + _did_you_mean(name, sorted(have)))
            return self._field(shown, rest, root)
        roots = [r for r in TEMPLATE_ROOTS if not (self.auth and r in ("params", "output_dir", "decoy", "control"))]
        close = difflib.get_close_matches(root, roots, n=1, cutoff=0.6)
        hint = ""
        if close:
            guess = close[0] + (f".{rest}" if rest else "")
            if close[0] == "subject" and first and first not in self.fields and first in self.all_captured:
                guess = f"captured.{rest}"
            hint = f" (did you mean '{{{{ {guess} }}}}'?)"
        return f"{shown}: unknown template name {root!r}; names are {', '.join(roots)}{hint}"

    def _field(self, shown: str, name: str, whose: str) -> str | None:
        name = name.split(".")[0]
        if name in self.fields or name in ("id", "canary"):
            return None
        if not name:
            return f"{shown}: name one of the {whose}'s fields, such as {{{{ {whose}.email }}}}"
        hint = ""
        if name in self.all_captured:
            target = "captured" if whose == "subject" else f"{whose}.captured"
            hint = f" (did you mean '{{{{ {target}.{name} }}}}'?)"
        else:
            hint = _did_you_mean(name, self.fields)
        return (f"{shown}: {name!r} is not a subject field (fields: {', '.join(self.fields)}; add others to "
                f"subject.extra_fields){hint}")

    def _captured(self, shown: str, name: str) -> str | None:
        from .operations import kept_by_ledger

        if not name:
            return f"{shown}: name a captured value, such as {{{{ captured.user_id }}}}"
        if name in self.have:
            return None
        from .operations import USES

        u = self.use
        if self.model.adapter or self.op not in USES or any(o not in self.model.captures for o in u.after or ()):
            # A Python adapter's captures are only known when it runs; an operation no suite runs
            # is given whatever its caller passes; without the operations before it, nothing is known.
            return None
        before = ", ".join(u.after or ()) or "nothing"
        prior = set().union(*(self.model.all_of(o) for o in u.after or ()))
        why = (f"no earlier step captures {name!r} when the suites run {self.op!r} (before it: {before}, "
               f"capturing {', '.join(sorted(prior)) or 'nothing'})")
        if u.from_ledger and not kept_by_ledger(name):
            why += ("; it runs from the ledger in `privacy-checks cleanup`, and the ledger never keeps secrets "
                    "(tokens, codes, passwords)")
        elif name in self.later:
            why += f"; step {self.later[name] + 1} of this operation captures it, after this one"
        else:
            elsewhere = sorted(o for o, steps in self.model.captures.items()
                               if o != self.op and any(name in c for c in steps))
            if elsewhere:
                why += f"; {', '.join(elsewhere)} capture{'s' if len(elsewhere) == 1 else ''} it, but " \
                       f"{'does' if len(elsewhere) == 1 else 'do'} not always run before {self.op!r}"
        return f"{shown}: {why}" + _did_you_mean(name, sorted(self.have))

    def _params(self, shown: str, name: str) -> str | None:
        from .operations import USES

        wanted = self.use.params
        if not wanted:
            given = ", ".join(n for n, u in USES.items() if u.params)
            return f"{shown}: the suites give {self.op!r} no params (operations given params: {given})"
        if wanted == ("<field>",):
            if name in self.fields:
                return None
            return (f"{shown}: {self.op!r} is given the new value of a subject field as params.<field>; "
                    f"{name!r} is not one (fields: {', '.join(self.fields)})" + _did_you_mean(name, self.fields))
        if name in wanted:
            return None
        return f"{shown}: {self.op!r} is given params {', '.join(wanted)}" + _did_you_mean(name, list(wanted))


def _template_problems(path: JsonPath, text: str, scope: _Scope) -> list[Problem]:
    out: list[Problem] = []
    for m in _TEMPLATE_ANY.finditer(text):
        inner = m.group(1)
        em = _TEMPLATE_EXPR.fullmatch(inner)
        if em is None:
            if _LOOKS_LIKE_NAME.fullmatch(inner):
                out.append((path, f"'{m.group(0)}' is not a template: a name is letters, digits and _ joined by "
                                  "dots, such as {{ subject.email }}"))
            continue
        problem = scope.check(em.group(1))
        if problem:
            out.append((path, problem))
    return out


def _condition_problems(path: JsonPath, source: Any, names: tuple[str, ...], what: str,
                        kind: str | None = None) -> list[Problem]:
    if not isinstance(source, str):
        return []
    try:
        cond = compile_condition(source)
    except ConditionError:
        return []  # reported with its column by _semantic_problems
    out: list[Problem] = []
    for dotted, column in cond.names:
        root = dotted.split(".")[0]
        if root in names:
            continue
        hint = (_KIND_HINTS.get(kind or "", {}).get(root))
        suggestion = f" (did you mean '{hint}{dotted[len(root):]}'?)" if hint in names else _did_you_mean(root, list(names))
        out.append((path, f"at column {column}: {root!r} is not a name {what} has (names: {', '.join(names)})"
                          f"{suggestion}"))
    return out


def _name_problems(data: dict, unresolved: set[JsonPath]) -> list[Problem]:
    """Templates and condition names that would have no value at run time (docs/profile.md)."""
    from .operations import CaptureModel
    from .subjects import subject_fields

    out: list[Problem] = []
    subject = _as_dict(data.get("subject"))
    try:
        fields = subject_fields({"fields": [f for f in _as_list(subject.get("fields")) if isinstance(f, str)],
                                 "extra_fields": [f for f in _as_list(subject.get("extra_fields"))
                                                  if isinstance(f, str)]})
    except TypeError:
        fields = []
    strategies = _as_dict(subject.get("strategies"))
    for name, spec in strategies.items():
        if name not in fields:
            out.append((("subject", "strategies", name),
                        f"{name!r} is not a subject field (fields: {', '.join(fields)}); add it to extra_fields"
                        + _did_you_mean(name, fields)))
        same = _as_dict(spec).get("same_as")
        if isinstance(same, str) and (same not in fields or same == name or _as_dict(strategies.get(same)).get("same_as")):
            out.append((("subject", "strategies", name, "same_as"),
                        f"{same!r} is not another field with a value of its own (fields: {', '.join(fields)})"))

    ops = {k: _as_dict(v) for k, v in _as_dict(data.get("operations")).items()}
    model = CaptureModel({name: [_step_captures(_as_dict(s)) for s in _as_list(op.get("steps"))]
                          for name, op in ops.items()}, adapter=bool(data.get("adapter")))
    all_captured = set().union(*(model.all_of(o) for o in ops)) if ops else set()
    auth = _as_dict(data.get("auth"))
    login = model.all_of("login") if "login" in ops else set()

    for op_name, op in ops.items():
        steps = [_as_dict(s) for s in _as_list(op.get("steps"))]
        have = model.before(op_name)
        for i, step in enumerate(steps):
            where: JsonPath = ("operations", op_name, "steps", i)
            kind = step_kind(step)
            later = {}
            for j in range(len(steps) - 1, i - 1, -1):
                for name in model.captures[op_name][j]:
                    later[name] = j
            scope = _Scope(op_name, kind, set(have), fields, model, all_captured, later)
            for key in _TEMPLATED:
                if key in step:
                    for path, text in _strings_in(step[key], (*where, key)):
                        if path not in unresolved:
                            out += _template_problems(path, text, scope)
            role = step.get("as", op.get("as"))
            if role in ("decoy", "control") and role not in scope.use.others:
                out.append(((*where, "as") if "as" in step else ("operations", op_name, "as"),
                            f"{op_name!r} runs with one subject; only 'interact' runs with the decoy"))
            if "export_part" in step and op_name != "export":
                out.append(((*where, "export_part"), "only steps of the 'export' operation are parts of the export"))
            spec = _as_dict(auth.get(step.get("auth")))
            if spec:
                acting = model.all_of("create_subject") if role in ("decoy", "control") else set(have)
                if spec.get("type") == "bearer" and op_name != "login":
                    acting |= login  # a bearer token still missing makes the run log in first
                auth_scope = _Scope(op_name, None, acting, fields, model, all_captured, auth=True)
                for key in ("token", "value", "username", "password"):
                    if isinstance(spec.get(key), str) and ("auth", step["auth"], key) not in unresolved:
                        for _p, problem in _template_problems((*where, "auth"), spec[key], auth_scope):
                            out.append(((*where, "auth"), f"auth {step['auth']!r} {key}: {problem}"))
            have |= model.captures[op_name][i]
        if steps and "gone_when" in op:
            kind = step_kind(steps[-1])
            out += _condition_problems(("operations", op_name, "gone_when"), op["gone_when"], STEP_NAMES[kind],
                                       f"the result of {'an' if kind == 'SQL' else 'a'} {kind} step", kind)
        for i, step in enumerate(steps):
            poll = _as_dict(step.get("poll"))
            out += _condition_problems(("operations", op_name, "steps", i, "poll", "until"), poll.get("until"),
                                       STEP_NAMES["HTTP"], "an HTTP response", "HTTP")
            match = _as_dict(step.get("mail")).get("match")
            out += _condition_problems(("operations", op_name, "steps", i, "mail", "match"), match,
                                       MAIL_NAMES, "a captured mail", "mail")

    for i, sink in enumerate(_as_list(data.get("sinks"))):
        out += _condition_problems(("sinks", i, "deletion_notice"), _as_dict(sink).get("deletion_notice"),
                                   DELIVERY_NAMES, "a delivery to a recipient")

    out += _export_problems(data, ops, model, fields, all_captured, unresolved)
    return out


def _export_problems(data: dict, ops: dict[str, dict], model, fields: list[str], all_captured: set[str],
                     unresolved: set[JsonPath]) -> list[Problem]:
    out: list[Problem] = []
    export = _as_dict(data.get("export"))
    delivery = export.get("delivery", "link")
    if "export" in ops and not export and not data.get("adapter") and "know" not in _as_dict(data.get("not_offered")):
        out.append((("export",), "the 'export' operation is declared but not how its result is obtained: give "
                                 "export.link (a download), or export.delivery: response or files"))
    if export:
        if delivery == "files" and not export.get("files"):
            out.append((("export",), "export.delivery is 'files' but export.files is missing: give the path the "
                                     "command step wrote, e.g. files: \"{{ captured.output_dir }}/export.json\""))
        if delivery == "link" and not export.get("link"):
            out.append((("export",), "export.delivery is 'link' (the default) but export.link is missing: give the "
                                     "download's path, or delivery: response or files"))
        parts = [i for i, s in enumerate(_as_list(_as_dict(ops.get("export")).get("steps")))
                 if "export_part" in _as_dict(s)]
        if parts and delivery != "response":
            out.append((("operations", "export", "steps", parts[0], "export_part"),
                        f"export parts are read from the responses, but export.delivery is {delivery!r}; "
                        "set export.delivery: response"))
    scope = _Scope("export", None, model.before("export") | model.all_of("export"), fields, model, all_captured)
    for key in ("link", "files", "renditions"):
        if key in export:
            for path, text in _strings_in(export[key], ("export", key)):
                if path not in unresolved:
                    out += _template_problems(path, text, scope)
    return out
