"""dbt tests as phlo checks: their names (``dbt__<test_type>__<target>``), the severity policy,
and a test's result as a `CheckResult` carrying the metadata contract."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

from phlo.quality.contract import CheckResult
from phlo.transforms.project import DbtProject

__all__ = ["TestSpec", "check_result", "test_specs"]

#: Test types whose failure is an error that blocks publishing unless tagged ``warn``.
ERROR_TESTS = frozenset({"not_null", "unique", "relationships"})


class TestSpec:
    """What phlo makes of one dbt test: the check's name, the node it checks, and its
    severity (``error`` tests are blocking)."""

    __test__ = False  # not a pytest class

    def __init__(
        self, unique_id: str, name: str, target: str, severity: Literal["error", "warn"]
    ) -> None:
        self.unique_id = unique_id
        self.name = name
        #: The unique id of the model, seed or snapshot the test checks.
        self.target = target
        self.severity = severity

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


def test_specs(project: DbtProject) -> dict[str, TestSpec]:
    """A spec per test attached to one of the project's models, seeds or snapshots, by test
    unique id. Names are ``dbt__<test_type>__<model>``; when two tests of one type check one
    model, each gets its column too (``dbt__not_null__stg_orders__id``), and a number when
    that is still not unique. Tests on sources are left to dbt (they are not asset checks)."""
    owned = {node.unique_id: node for node in project.nodes()}
    found: list[tuple[str, str, str, str, Literal["error", "warn"]]] = []
    for test in project.tests():
        target = _attached(test)
        if target not in owned:
            continue
        kind = _test_type(test)
        column = str(test.get("column_name") or "")
        found.append((test["unique_id"], kind, owned[target].name, column, _severity(test, kind)))
    bases = Counter((kind, model) for _, kind, model, _, _ in found)
    specs: dict[str, TestSpec] = {}
    taken: Counter[str] = Counter()
    targets = {test_id: _attached(project.manifest["nodes"][test_id]) for test_id, *_ in found}
    for test_id, kind, model, column, severity in sorted(found):
        name = f"dbt__{kind}__{model}"
        if bases[(kind, model)] > 1 and column:
            name += f"__{column}"
        taken[name] += 1
        if taken[name] > 1:
            name += f"__{taken[name]}"
        specs[test_id] = TestSpec(test_id, name, targets[test_id], severity)
    return specs


def check_result(
    spec: TestSpec,
    test: Mapping[str, Any],
    outcome: Mapping[str, Any],
    *,
    partition_key: str | None,
    total_count: int,
    repro_sql: str,
    sample: list[dict[str, Any]],
) -> CheckResult:
    """The check result of a test that ran: `outcome` is its entry of ``run_results.json``
    (status ``pass``, ``fail``, ``warn`` or ``error``), `test` its manifest node."""
    status = outcome.get("status")
    failures = int(outcome.get("failures") or 0)
    passed = status == "pass"
    message = ""
    if not passed:
        message = (
            f"dbt test {test['name']} failed on {failures} rows"
            if status in ("fail", "warn")
            else f"dbt test {test['name']} could not run: {outcome.get('message')}"
        )
    return CheckResult(
        name=spec.name,
        passed=passed,
        source="dbt",
        partition_key=partition_key,
        failed_count=failures,
        total_count=total_count,
        query_or_sql=str(outcome.get("compiled_code") or test.get("compiled_code") or ""),
        sample=sample,
        repro_sql=repro_sql,
        severity=spec.severity,
        message=message,
        details={"dbt_unique_id": spec.unique_id, "dbt_status": str(status)},
    )


def _attached(test: Mapping[str, Any]) -> str:
    """The node a test checks: dbt's attached node, else a singular test's only parent."""
    attached = test.get("attached_node")
    if attached:
        return str(attached)
    parents = [p for p in test.get("depends_on", {}).get("nodes", []) if not p.startswith("test.")]
    return parents[0] if len(parents) == 1 else ""


def _test_type(test: Mapping[str, Any]) -> str:
    """A generic test's name (``not_null``, ``accepted_values``…), a singular test's own name."""
    metadata = test.get("test_metadata") or {}
    return str(metadata.get("name") or test["name"])


def _severity(test: Mapping[str, Any], kind: str) -> Literal["error", "warn"]:
    """not_null, unique and relationships are errors, other tests warnings; the tags
    ``blocking`` and ``warn`` override."""
    tags = set(test.get("tags") or []) | set((test.get("config") or {}).get("tags") or [])
    if "blocking" in tags:
        return "error"
    if "warn" in tags:
        return "warn"
    return "error" if kind in ERROR_TESTS else "warn"
