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
    def not_offered(self) -> dict[str, str]:
        return dict(self.data.get("not_offered") or {})

    @property
    def retention_exceptions(self) -> list[dict]:
        return list(self.data.get("retention_exceptions") or [])

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
    def policy(self) -> Path | None:
        policy = self.data.get("policy")
        return self.resolve(policy) if policy else None

    def resolve(self, path: str) -> Path:
        """A path from the profile; relative ones are relative to the profile's directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.path.parent / p


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


def _schema_problems(data: dict, unresolved: set[JsonPath]) -> list[Problem]:
    out: list[Problem] = []
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
            if "method" in step:
                path = step.get("path")
                if isinstance(path, str) and re.match(r"https?://", path):
                    check_host((*where, "path"), path)
            if "sql" in step and isinstance(step.get("store"), str):
                out += _store_reference((*where, "store"), step["store"], stores, "url",
                                        "an SQL step needs a database store (one with a url)")
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
            reads_sql = "table" in sink or "query" in sink
            out += _store_reference(("sinks", i, "store"), sink["store"], stores, "url" if reads_sql else None,
                                    "a sink's 'table' or 'query' is in a database store (one with a url)")
        elif "table" in sink or "query" in sink or "key" in sink:
            out.append((("sinks", i), "'table', 'query' and 'key' need the sink's 'store'"))

    for i, exc in enumerate(_as_list(data.get("retention_exceptions"))):
        exc = _as_dict(exc)
        if isinstance(exc.get("store"), str):
            if "table" in exc:
                need, why = "url", "a 'table' is in a database store (one with a url)"
            elif "file" in exc:
                need, why = ("files", "lake"), "a 'file' is in a file or lake store (one with files or lake)"
            elif "key" in exc:
                need, why = "url", "a 'key' is in a Redis or S3 store (one with a url)"
            else:
                need, why = None, ""
            out += _store_reference(("retention_exceptions", i, "store"), exc["store"], stores, need, why)
        form = exc.get("form")
        if isinstance(form, str):
            from .observe.forms import ALL_FORMS

            if form not in ALL_FORMS:
                out.append((("retention_exceptions", i, "form"), f"{form!r} is not one of {list(ALL_FORMS)!r}"))
    return out


def _store_reference(path: JsonPath, name: str, stores: dict[str, dict], need: str | tuple[str, ...] | None,
                     why: str) -> list[Problem]:
    if name not in stores:
        declared = f"declared: {', '.join(stores)}" if stores else "no stores are declared"
        return [(path, f"no store named {name!r} ({declared})")]
    needs = (need,) if isinstance(need, str) else need
    if needs and not any(n in stores[name] for n in needs):
        return [(path, f"store {name!r} does not fit: {why}")]
    return []


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
