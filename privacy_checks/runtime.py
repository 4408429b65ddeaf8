"""One run of the suites: the profile, the target, the ledger, the capture sink, subjects.

Everything here is created lazily, the first time a test asks for it, so that the plugin
(loaded into every pytest run through its entry point) costs nothing elsewhere.
"""

from __future__ import annotations

import os
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import PrivacyChecksError

DEMO_PROFILE = "demo.yaml"


def store_specs(profile) -> list:
    """The profile's stores as the sweep's StoreSpecs."""
    return [store_spec(s) for s in profile.stores]


# Keys every store may have that the sweep itself does not read.
_NOT_SWEPT = ("expect_subject",)
_SPEC_KEYS = ("name", "url", "schemas", "include_tables", "exclude_tables", "exclude_columns", "files", "lake")


def store_spec(store: dict):
    """One profile store as a StoreSpec: the keys every kind shares as fields, the rest (one
    kind's settings, checked by the profile schema) as ``options`` for that kind's module."""
    from .observe.stores import StoreSpec

    shared = {k: v for k, v in store.items() if k in _SPEC_KEYS and v is not None}
    options = {k: v for k, v in store.items() if k not in _SPEC_KEYS and k not in _NOT_SWEPT}
    return StoreSpec(**shared, options=options)


def remember_profile_secrets(profile) -> None:
    """The profile's configured credentials (after ${VAR} substitution) are live secrets."""
    from .evidence import remember_secret

    for spec in profile.auth.values():
        for key in ("token", "password", "client_secret", "value"):
            value = spec.get(key) if isinstance(spec, dict) else None
            if isinstance(value, str) and "{{" not in value:
                remember_secret(value)
    for store in profile.stores:
        url = store.get("url")
        if url:
            from sqlalchemy.engine import make_url

            try:
                remember_secret(make_url(url).password)
            except Exception:  # noqa: BLE001 - lint already reported a malformed URL
                pass


def capture_bind(settings: dict) -> tuple[str, int]:
    """`capture.bind` ("host:port", "[::1]:8025") as (host, port); loopback on a free port by default."""
    bind = settings.get("bind")
    if not bind:
        return "127.0.0.1", 0
    host, _, port = str(bind).rpartition(":")
    return host.strip("[]"), int(port)


def demo_profile_path() -> Path:
    return Path(str(resources.files("privacy_checks.profiles").joinpath(DEMO_PROFILE)))


class RunContext:
    def __init__(self, *, target_path: str | None, flaws: list[str], faults: list[str] | None = None,
                 ledger_url: str | None, seed: str, lease_seconds: float,
                 sink_control_url: str | None = None, smtp_url: str | None = None, run_label: str = "",
                 keep_artifacts: bool = False) -> None:
        self.target_path = target_path
        self.flaws = flaws
        self.faults = faults or []
        self.ledger_url = ledger_url
        self.seed = seed
        self.lease_seconds = lease_seconds
        self.keep_artifacts = keep_artifacts
        self.progress_stream = None  # where a long sweep shows its progress (plugin.py: the terminal)
        self._sink_control_url = sink_control_url
        # Under xdist the controller runs both captures and hands workers their addresses ("" for
        # a run that observes no mail); a process given none runs its own.
        self._owns_capture = sink_control_url is None
        self._smtp_url = smtp_url
        self._smtp_server = None
        self._lock = threading.RLock()
        self._capture_server = None
        self._capture = None
        self.demo = None
        self._profile = None
        self._target = None
        self._ledger = None
        self.run_id: str | None = None
        self._profile_info: dict | None = None
        self._factory = None
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        self.end_status = "finished"  # the ledger's word for how the run ended ("interrupted")
        self.startup_error: str | None = None
        self.created: list = []
        from .subjects import new_run_nonce

        self.nonce = new_run_nonce()

    # -- capture sink -------------------------------------------------------------------------
    @property
    def capture(self):
        from .observe.sinks import CaptureClient, CaptureServer

        with self._lock:
            if self._capture is None:
                # loading the profile (for its settings) may start the SMTP capture, which starts
                # this one first: settings before the check, so it is made only once
                settings = self._capture_settings() if self._sink_control_url is None else {}
                if self._capture is None and self._sink_control_url is None:
                    host, port = capture_bind(settings)
                    self._capture_server = CaptureServer(host, port, advertised_url=settings.get("advertised_url"))
                    self._sink_control_url = self._capture_server.control_url
                if self._capture is None:
                    self._capture = CaptureClient(self._sink_control_url)
            return self._capture

    def _capture_settings(self) -> dict:
        """The profile's `capture:` section (a --target profile; the built-in demo is told where
        the sink is). A profile that does not load gives none: every check reports its error."""
        if not self.target_path:
            return {}
        try:
            return dict(self.profile.capture)
        except PrivacyChecksError:
            return {}

    def capture_where(self) -> str:
        """Where the capture server listens, for messages about deliveries that never came."""
        settings = self._capture_settings()
        listens = settings.get("bind") or (self._sink_control_url or "").split("://")[-1] or "a random port"
        advertised = settings.get("advertised_url")
        told = f", advertised to the target as {advertised}" if advertised else (
            " (capture.bind not set: a random port)" if not settings.get("bind") and self.target_path else "")
        return f"the capture server listens on {listens}{told}"

    @property
    def smtp_url(self) -> str | None:
        """Where the target sends mail (smtp://host:port), or None when this run observes none.

        Mail is observed for the built-in demo (its outbox is mailed) and for a profile that sets
        `capture.smtp` or whose sinks declare a `mailbox`. Captured mail joins the HTTP capture's
        sequence, so every worker reads it through the same client."""
        with self._lock:
            if self._smtp_url is None and self._owns_capture:
                settings = self._smtp_settings()  # loading the profile may have started it already
                if self._smtp_url is not None:
                    pass
                elif settings is None:
                    self._smtp_url = ""
                else:
                    from .observe.smtp import SmtpCaptureServer

                    self.capture  # noqa: B018 - the HTTP capture whose sequence mail joins
                    host, port = capture_bind(settings)
                    self._smtp_server = SmtpCaptureServer(host, port, record_into=self._capture_server._server)
                    self._smtp_url = settings.get("advertised_url") or self._smtp_server.url
            return self._smtp_url or None

    def mail_to(self, address: str) -> list:
        """Every message the SMTP capture received for `address` in this run, oldest first."""
        return self.capture.captures(0, path=f"mailto:{address}")

    def _smtp_settings(self) -> dict | None:
        if not self.target_path:
            return {}
        profile = self.profile
        smtp = (profile.capture or {}).get("smtp")
        if smtp is None and not any(s.get("mailbox") for s in profile.sinks):
            return None
        return dict(smtp or {})

    @property
    def sink_url(self) -> str:
        self.capture  # noqa: B018 - starts the sink on first use
        return self._sink_control_url  # type: ignore[return-value]

    # -- profile and target -------------------------------------------------------------------
    @property
    def profile(self):
        from .profile import load_profile

        with self._lock:
            if self.startup_error:
                raise PrivacyChecksError(self.startup_error)
            if self._profile is None:
                try:
                    if self.target_path:
                        self._profile = load_profile(self.target_path)
                        if self._owns_capture:
                            try:
                                self.smtp_url  # noqa: B018 - listening before the first subject is made
                            except PrivacyChecksError:
                                self._profile = None  # a run that cannot observe mail has no usable profile
                                raise
                    else:
                        self._profile = load_profile(demo_profile_path(), env={**os.environ, **self._start_demo()})
                except PrivacyChecksError as exc:
                    # Remember it: every later test gets the same one-line error, not a retry.
                    self.startup_error = str(exc)
                    raise
                remember_profile_secrets(self._profile)
                from .observe.stores import progress

                progress.configure(budget_s=self._profile.timeouts.get("sweep"),
                                   stream=self.progress_stream)
            return self._profile

    def _start_demo(self) -> dict[str, str]:
        from .demo.launch import DemoProcess

        self.demo = DemoProcess(flaws=list(self.flaws), faults=list(self.faults), sink_url=self.sink_url,
                                smtp_url=self.smtp_url).start()
        # the profile's capture.bind names the sink this run already listens on
        return {**self.demo.env(), "PRIVACY_CHECKS_DEMO_SINK": self.sink_url.split("://", 1)[-1]}

    @property
    def target(self):
        from .target import Target

        with self._lock:
            if self._target is None:
                profile = self.profile
                stores = {s["name"]: s for s in profile.stores}
                from .safety import ensure_owned

                self._target = Target(profile, stores=stores, keep_artifacts=self.keep_artifacts,
                                      guard=lambda s: ensure_owned(self.ledger, s, target=profile.name),
                                      mail=self.mail_to if self.smtp_url else None)
            return self._target

    @property
    def history_name(self) -> str:
        """The name cross-run history (the policy page's hash) is kept under. A real target keeps
        its history; the built-in demo keeps one per set of flaws, since a demo started with other
        flaws is another target: a clean run never compares itself with a flawed one."""
        name = self.profile.name
        if self.target_path or not self.flaws:
            return name
        return f"{name}[flaws: {','.join(sorted(self.flaws))}]"

    @property
    def started_target(self):
        """The target if something has started it, else None: for readers (the evidence of a
        check's exchanges) that must not start one just to look."""
        return self._target

    def target_info(self) -> dict:
        return {"name": self.profile.name, "base_url": self.profile.base_url, "flaws": list(self.flaws),
                "seed": self.seed, "nonce": self.nonce, "run_id": self.run_id, "profile": self.profile_info()}

    def profile_info(self) -> dict:
        """The profile file (path and SHA-256) and what it excludes, for the report's scope."""
        with self._lock:
            if self._profile_info is None:
                from .report.conditions import profile_scope

                self._profile_info = profile_scope(self.profile)
            return self._profile_info

    # -- ledger -------------------------------------------------------------------------------
    @property
    def ledger(self):
        from .ledger import Ledger

        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(self.ledger_url)
                self.run_id = self._ledger.start_run(self.profile.name, seed=self.seed, nonce=self.nonce,
                                                     lease_seconds=self.lease_seconds)
                self._heartbeat = threading.Thread(target=self._renew, name="privacy-checks-lease", daemon=True)
                self._heartbeat.start()
            return self._ledger

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self._ledger.renew_lease(self.run_id, self.lease_seconds)
            except Exception:  # noqa: BLE001 - a missed renewal only shortens the lease
                pass

    # -- subjects -----------------------------------------------------------------------------
    @property
    def factory(self):
        from .subjects import SubjectFactory

        with self._lock:
            if self._factory is None:
                spec = self.profile.subject or {}
                target = self.profile.name
                self._factory = SubjectFactory(seed=self.seed, nonce=self.nonce, locale=spec.get("locale", "en_US"),
                                               email_domain=spec.get("email_domain", "example.com"),
                                               fields=spec.get("fields"), strategies=spec.get("strategies"),
                                               extra_fields=spec.get("extra_fields"),
                                               taken=lambda field: self.ledger.live_values(target, field))
            return self._factory

    def create_subject(self, test_id: str, role: str = "subject", *, creator=None, **overrides: Any):
        """Build a subject, write the intent to the ledger, then create it on the target: through
        the `create_subject` operation, or `creator(subject)` (a browser signup), which fills
        `subject.captured` with the ids the target assigned."""
        subject = self.factory.build(test_id, role=role)
        subject.fields.update(overrides)
        ledger = self.ledger
        ledger.record_intent(self.run_id, self.profile.name, subject)
        try:
            if creator is not None:
                creator(subject)
            else:
                self.target.run("create_subject", subject)
        except PrivacyChecksError:
            ledger.update_subject(subject.id, state="orphaned", captured=subject.captured)
            raise
        ledger.update_subject(subject.id, state="created", captured=subject.captured)
        self.created.append(subject)
        return subject

    def procedure(self, request, runner, *, label: str | None = None, **kwargs: Any):
        """Body of a module-scoped fixture: run `runner` once, yield its outcome (carrying its
        evidence, which the reports attach to every check judging it), then remove the subjects
        it created. Subjects kept for a pending request stay in the ledger for a later run."""
        import warnings

        from .evidence import Evidence

        start = len(self.created)
        name = label or runner.__name__.removeprefix("run_")
        # a package-scoped procedure (suites/web's reference visit) has no module
        owner = request.module.__name__ if request.scope in ("module", "class", "function") else \
            request.node.nodeid.replace("/", ".").strip(".")
        record = Evidence(f"{owner}.{name}-procedure")
        outcome = runner(self, test_id=request.node.nodeid, evidence=record, **kwargs)
        if outcome is not None and hasattr(outcome, "__dict__"):
            outcome.evidence = record
        yield outcome
        errors = self.remove_created_since(start)
        if errors:
            from .evidence import scrub

            warnings.warn(scrub("could not remove subjects (kept in the ledger for cleanup): " + "; ".join(errors)),
                          stacklevel=1)

    def remove_created_since(self, index: int) -> list[str]:
        """Remove every subject created after `created[index]`; return what could not be removed."""
        errors = []
        for subject in reversed(self.created[index:]):
            try:
                self.remove_subject(subject)
            except Exception as exc:  # noqa: BLE001 - the ledger keeps it for `privacy-checks cleanup`
                errors.append(f"{subject.describe()}: {exc}")
        del self.created[index:]
        return errors

    def remove_subject(self, subject) -> None:
        """Teardown: remove a subject the run created, unless a pending request keeps it."""
        row = self.ledger.subject(subject.id)
        if row is None or row["state"] in ("cleaned", "awaiting_request"):
            return
        op = "cleanup" if self.target.has_operation("cleanup") else "delete"
        if row["state"] != "deleted":
            self.target.run(op, subject)
        self.ledger.update_subject(subject.id, state="cleaned")

    def close(self) -> None:
        self._stop.set()
        if self._ledger is not None and self.run_id:
            try:
                self._ledger.finish_run(self.run_id, status=self.end_status)
            finally:
                self._ledger.close()
        if self._target is not None:
            if self.keep_artifacts and self._target.artifacts:
                import sys

                sys.stderr.write(f"privacy-checks: command steps' output directories kept in "
                                 f"{self._target.artifacts}\n")
            self._target.close()
        if self.demo is not None:
            self.demo.stop()
        if self._smtp_server is not None:
            self._smtp_server.stop()
        if self._capture_server is not None:
            self._capture_server.stop()
