"""Publishing a Dagster run: the step the ``auto_promotion_sensor`` takes for runs the daemon
launched, and `promote` for ``dagster.materialize()`` callers and tests. Once the run's merge
landed, the marts its publishing assets recorded go to PostgreSQL from the target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import dagster as dg

from phlo import wap
from phlo.dagster import tags
from phlo.dagster.publishing import publish_recorded, recorded_publications
from phlo.dagster.runs import run_events
from phlo.errors import CommitConflictError, InputError, PhloError

if TYPE_CHECKING:
    from phlo.publishing import PublishResult

__all__ = ["RunPromotion", "failed_blocking_checks", "failed_steps", "promote"]

#: ``published`` / ``already_published``: the run's tables are on the target (now, or by an
#: earlier promotion); ``no_branch``: the run wrote nothing through phlo's WAP; ``blocked``: the
#: run has not finished (not recorded), did not succeed, or a blocking check failed (target
#: untouched, branch kept);
#: ``conflict``: the merge conflicted with the target (target untouched, branch kept);
#: ``not_published``: the merge landed but publishing the run's marts to PostgreSQL failed
#: (`RunPromotion.reason`; promoting again, or the ``publication_retry_sensor``, retries it).
#: Blocked and conflicting runs publish nothing to PostgreSQL.
PromotionStatus = Literal[
    "published", "already_published", "no_branch", "blocked", "conflict", "not_published"
]


@dataclass(frozen=True)
class RunPromotion:
    """What promoting one Dagster run did."""

    run_id: str
    status: PromotionStatus
    #: The WAP promotion (None unless the merge was attempted and succeeded).
    promotion: wap.Promotion | None = None
    #: Why the run was blocked, conflicted or not published to PostgreSQL.
    reason: str = ""
    #: The run's marts published to PostgreSQL from the target, by ``schema.table`` (mode
    #: ``unchanged`` when an earlier promotion published that snapshot already).
    published: dict[str, PublishResult] = field(default_factory=dict)


def failed_blocking_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """``asset:check`` of every blocking ERROR check the run evaluated as failed."""
    failed = []
    for event in run_events(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = event.event_specific_data
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
    for event in run_events(instance, run_id, dg.DagsterEventType.STEP_FAILURE):
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:
            error = error.cause  # Dagster wraps what the step raised
        message = error.message.strip() if error is not None else "failed"
        failed.append(f"{event.step_key}: {message}")
    return failed


def promote(instance: dg.DagsterInstance, run_id: str) -> RunPromotion:
    """Publishes run `run_id` if it succeeded and no blocking check failed: one catalog merge
    of its branch into the target (every table it wrote), found through the run's tags; then
    the marts its publishing assets recorded go to PostgreSQL from the target (never from the
    branch: a blocked or conflicting run publishes nothing). Idempotent (`phlo.wap.promote`;
    a snapshot already in PostgreSQL is not sent again, nor an older one over a newer); the
    outcome is recorded as the run tags ``phlo/promotion`` and ``phlo/publication``."""
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
    target = run.tags[tags.TARGET]
    publications = recorded_publications(instance, run_id)
    if publications and tags.PUBLICATION not in run.tags:
        # Set before the merge: a crash between the merge and the publish leaves the run
        # for the publication_retry_sensor.
        instance.add_run_tags(run_id, {tags.PUBLICATION: "pending"})
    try:
        promotion = wap.promote(lh, run_id, target)
    except CommitConflictError as exc:
        outcome = RunPromotion(run_id, "conflict", reason=str(exc))
        return _record(instance, outcome, "withheld" if publications else None)
    if not publications:
        return _record(instance, RunPromotion(run_id, promotion.status, promotion))
    try:
        published = publish_recorded(publications, lh, target)
    except PhloError as exc:
        reason = f"merged into {target}, but not published to PostgreSQL: {exc}"
        outcome = RunPromotion(run_id, "not_published", promotion, reason)
        return _record(instance, outcome, "failed")
    outcome = RunPromotion(run_id, promotion.status, promotion, published=published)
    return _record(instance, outcome, "published")


def _record(
    instance: dg.DagsterInstance, outcome: RunPromotion, publication: str | None = None
) -> RunPromotion:
    merged = outcome.status in ("already_published", "not_published")
    value = "published" if merged else outcome.status
    run_tags: dict[str, str] = {tags.PROMOTION: value}
    if publication is not None:
        run_tags[tags.PUBLICATION] = publication
    if outcome.promotion and outcome.promotion.commit:
        run_tags[tags.PROMOTION_COMMIT] = outcome.promotion.commit.commit_id
    instance.add_run_tags(outcome.run_id, run_tags)
    return outcome
