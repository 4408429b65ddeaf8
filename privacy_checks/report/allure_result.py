"""What one check's Allure result says, so the Allure report reads like the law.

- title: the promise in words (the test's docstring, or its name as a sentence: test names
  state the promise);
- description: the check id, the policy's own words (the suite module's docstring quotes
  them) and each clause cited, linked to its text;
- parameters: the target and the demo flaws (excluded from Allure's history id, so a flawed
  run and a clean one stay one test in the trend);
- status message: starts with the outcome in brackets (``[failed]``, ``[error]``, ``[not
  verified]``, ``[waived]``, ``[not applicable]``), which categories.json matches — the
  outcome, not the wording of a message;
- time: a check that judges a procedure (or records its own evidence) starts when that work
  started, so its duration is the time its verdict took, not the 0 s of the judgement alone.

The listener's current test result is reached through allure-pytest's own reporter
(``allure_logger.get_test(None)``); nothing here runs unless allure-pytest is writing results.
"""

from __future__ import annotations

import re

from .. import clauses as registry


def listener(item):
    return item.config.pluginmanager.get_plugin("allure_listener")


def promise_title(item) -> str:
    doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").strip()
    if doc:
        return doc.splitlines()[0].strip().rstrip(".")
    name = (getattr(item, "originalname", None) or item.name).removeprefix("test_").replace("_", " ").strip()
    return name[:1].upper() + name[1:]


def description(item, check_id: str, citations: list[tuple[str, str]]) -> str:
    """Markdown: the check, what the policy says (quoted in the suite's docstring), the law."""
    out = [f"**Check** `{check_id}`: {promise_title(item)}."]
    module_doc = (getattr(getattr(item, "module", None), "__doc__", None) or "").strip()
    if module_doc:
        out += ["", "**What is promised**", ""] + [f"> {line}" if line.strip() else ">"
                                                    for line in module_doc.splitlines()]
    laws = []
    for family, ref in citations:
        try:
            cited = registry.resolve(family, ref)
        except registry.ClauseError:
            continue
        laws.append(f"- [{cited.display}]({cited.url}): {cited.clause.title}. {cited.clause.summary}")
    if laws:
        out += ["", "**The law**", "", *dict.fromkeys(laws)]
    return "\n".join(out)


def _ms(ts: float) -> int:
    return int(ts * 1000)


def decorate(item, rep, *, check_id: str, citations: list[tuple[str, str]], outcome: str | None,
             target: dict | None, began: float | None) -> None:
    """Set title, description, parameters, outcome message and start of the current result."""
    allure = listener(item)
    if allure is None:
        return
    result = allure.allure_logger.get_test(None)
    if result is None:
        return
    import allure as api
    from allure_commons.model2 import StatusDetails

    api.dynamic.title(promise_title(item))
    api.dynamic.description(description(item, check_id, citations))
    api.dynamic.parameter("check", check_id, excluded=True)
    for name, value in (("target", (target or {}).get("name")), ("base URL", (target or {}).get("base_url")),
                        ("demo flaws", ", ".join((target or {}).get("flaws") or []) or None)):
        if value:
            api.dynamic.parameter(name, value, excluded=True)
    if outcome and outcome != "passed":
        text = _message(rep)
        details = result.statusDetails or StatusDetails()
        details.message = f"[{outcome}] {text}"
        details.trace = details.trace or text
        result.statusDetails = details
    if began is not None and result.start:
        result.start = min(result.start, _ms(began))


def _message(rep) -> str:
    longrepr = rep.longrepr
    if isinstance(longrepr, tuple):
        text = str(longrepr[2])
    else:
        text = str(getattr(longrepr, "reprcrash", None) and longrepr.reprcrash.message or longrepr or "")
    text = re.sub(r"^(FAILED|ERROR|NOT VERIFIED|Skipped): ", "", text.strip())
    text = re.sub(r"^[\w.]+\.(PromiseBroken|CheckError|ControlFailed|Waived|NotVerified|NotApplicable): ", "", text)
    return re.sub(r"^(not verified|not applicable|waived): ", "", text)

