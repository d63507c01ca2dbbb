"""Publishing a Dagster run: the step the ``auto_promotion_sensor`` takes for runs the daemon
launched, and `promote` for ``dagster.materialize()`` callers and tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dagster as dg

from phlo import wap
from phlo.dagster import tags
from phlo.errors import CommitConflictError, InputError

__all__ = ["RunPromotion", "failed_blocking_checks", "failed_steps", "promote"]

#: ``published`` / ``already_published``: the run's tables are on the target (now, or by an
#: earlier promotion); ``no_branch``: the run wrote nothing through phlo's WAP; ``blocked``: the
#: run has not finished (not recorded), did not succeed, or a blocking check failed (target
#: untouched, branch kept);
#: ``conflict``: the merge conflicted with the target (target untouched, branch kept).
PromotionStatus = Literal["published", "already_published", "no_branch", "blocked", "conflict"]


@dataclass(frozen=True)
class RunPromotion:
    """What promoting one Dagster run did."""

    run_id: str
    status: PromotionStatus
    #: The WAP promotion (None unless the merge was attempted and succeeded).
    promotion: wap.Promotion | None = None
    #: Why the run was blocked or conflicted.
    reason: str = ""


def failed_blocking_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """``asset:check`` of every blocking ERROR check the run evaluated as failed."""
    failed = []
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if (
            isinstance(evaluation, dg.AssetCheckEvaluation)
            and evaluation.blocking
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return failed


def failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """``step: error`` of every step of the run that failed (the error its code raised, e.g. a
    quality check that could not run), so a blocked promotion says what to fix."""
    failed = []
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    for record in records.records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:
            error = error.cause  # Dagster wraps what the step raised
        message = error.message.strip() if error is not None else "failed"
        failed.append(f"{event.step_key}: {message}")
    return failed


def promote(instance: dg.DagsterInstance, run_id: str) -> RunPromotion:
    """Publishes run `run_id` if it succeeded and no blocking check failed: one catalog merge
    of its branch into the target (every table it wrote), found through the run's tags.
    Idempotent (`phlo.wap.promote`); the outcome is recorded as the run tag
    ``phlo/promotion``."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise InputError(f"run {run_id} is not known to this Dagster instance")
    if tags.BRANCH not in run.tags:
        return RunPromotion(run_id, "no_branch", reason="the run has no phlo WAP branch")
    if not run.is_finished:
        reason = f"the run is {run.status.value}; it publishes once it succeeded"
        return RunPromotion(run_id, "blocked", reason=reason)
    failed = failed_blocking_checks(instance, run_id)
    if run.status != dg.DagsterRunStatus.SUCCESS or failed:
        reasons = []
        if run.status != dg.DagsterRunStatus.SUCCESS:
            steps = failed_steps(instance, run_id)
            reasons.append(
                f"the run is {run.status.value}"
                + (f" (failed steps: {'; '.join(steps)})" if steps else "")
            )
        if failed:
            reasons.append(f"blocking checks failed: {', '.join(failed)}")
        return _record(instance, RunPromotion(run_id, "blocked", reason="; ".join(reasons)))
    from phlo.lakehouse_target import open_located

    lh = open_located(run.tags[tags.LAKEHOUSE], run.tags.get(tags.PROJECT, ""))
    try:
        promotion = wap.promote(lh, run_id, run.tags[tags.TARGET])
    except CommitConflictError as exc:
        return _record(instance, RunPromotion(run_id, "conflict", reason=str(exc)))
    return _record(instance, RunPromotion(run_id, promotion.status, promotion))


def _record(instance: dg.DagsterInstance, outcome: RunPromotion) -> RunPromotion:
    value = "published" if outcome.status == "already_published" else outcome.status
    run_tags: dict[str, str] = {tags.PROMOTION: value}
    if outcome.promotion and outcome.promotion.commit:
        run_tags[tags.PROMOTION_COMMIT] = outcome.promotion.commit.commit_id
    instance.add_run_tags(outcome.run_id, run_tags)
    return outcome
