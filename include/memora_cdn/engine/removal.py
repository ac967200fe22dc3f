"""The removal guard (SPEC §7, docs/removals.md): may this run remove these plans from the CDN?

A plan's folder is removed when the database no longer lists the plan (deleted, or unpublished where
`is_published` exists: `read.list_plans` leaves those out, so both look the same here). A database that
answers wrongly (a restore in progress, a wrong schema in `memora_mysql`, a half-finished migration)
would otherwise empty the CDN, so every path that removes a plan asks `decide_removals` first and removes
only through `remove_plans`:

- the nightly `orchestration.tasks.remove_deleted_plans` (plan folders the database does not list),
- the sync run's claim (`tracking.sync.claim_batch`: claimed plans that are gone but still have files),
- a build of a plan that is gone (`engine.build.build_plan`: the sync's builds, the nightly rebuild of
  listed plans, the command line's `rebuild`),
- the command line's `remove-plans --confirm`.

The decision is a pure function of a few numbers (modelled on Hugo deploy's `maxDeletes`), so its table
of cases is tested without any service. A refusal removes nothing and raises `RemovalRefused`, whose
message names what would have been removed and why it was not.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

log = logging.getLogger(__name__)

DEFAULT_MIN_LIMIT = 5  # the default limit is 10% of the plans on the CDN, but at least this many
DEFAULT_PERCENT = 10
MAX_NAMED = 20  # plans named in a refusal message; the rest are counted

EMPTY_DATABASE = "empty database"
OVER_LIMIT = "over the limit"

HOW_TO_CONFIRM = ("If these plans really are gone, confirm: trigger memora_cdn_full_rebuild with the param "
                  "confirm_removals=true, or run `python -m memora_cdn remove-plans --confirm PLAN...`.")


class RemovalRefused(RuntimeError):
    """The removal guard refused a run's removals; nothing was removed. `decision` says what and why."""

    def __init__(self, decision: "RemovalDecision") -> None:
        self.decision = decision
        super().__init__(decision.message())


def removal_limit(max_plan_removals: int | None, published: int) -> int:
    """How many plans one run may remove without a confirmation: the setting, or else 10% of the `published`
    plans (the plan folders on the CDN), rounded down, but at least 5."""
    if max_plan_removals is not None:
        return max_plan_removals
    return max(DEFAULT_MIN_LIMIT, published * DEFAULT_PERCENT // 100)


@dataclass(frozen=True)
class RemovalDecision:
    candidates: tuple[str, ...]  # plans the run would remove (sorted)
    remove: tuple[str, ...]  # what it may remove: all candidates, or none
    refusal: str | None  # None, EMPTY_DATABASE or OVER_LIMIT
    limit: int
    listed_plans: int  # plans the database lists
    published: int  # plan folders on the CDN
    confirmed: bool
    max_plan_removals: int | None = None  # the setting the limit came from (None: the default rule)

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    def named(self, limit: int = MAX_NAMED) -> str:
        shown = ", ".join(self.candidates[:limit])
        more = len(self.candidates) - limit
        return shown + (f" (+{more} more)" if more > 0 else "")

    def why(self) -> str:
        if self.refusal == EMPTY_DATABASE:
            return ("the database lists no plans at all (a restore in progress, a wrong database or schema in "
                    "the connection memora_mysql, a half-finished migration, or every plan unpublished?)")
        if self.refusal == OVER_LIMIT:
            return (f"{len(self.candidates)} removals are more than one run may make: max_plan_removals allows "
                    f"{self.limit}" + ("" if self.max_plan_removals is not None else
                                       f" (10% of the {self.published} plans on the CDN, at least {DEFAULT_MIN_LIMIT})"))
        return ""

    def message(self) -> str:
        if not self.refused:
            return f"may remove {len(self.remove)} plan(s): {self.named()}" if self.remove else "nothing to remove"
        return (f"refused to remove {len(self.candidates)} plan(s) that the database does not list (deleted or "
                f"unpublished): {self.named()}. Why not: {self.why()}. Nothing was removed. {HOW_TO_CONFIRM}")

    def as_dict(self) -> dict:
        """Small enough for Redis and the dashboard: the first names only."""
        return {"plans": list(self.candidates[:MAX_NAMED]), "count": len(self.candidates), "refusal": self.refusal,
                "reason": self.why(), "limit": self.limit, "listed_plans": self.listed_plans,
                "published": self.published}


def decide_removals(candidates: Iterable[str], *, listed_plans: int, published: int,
                    max_plan_removals: int | None, confirmed: bool = False) -> RemovalDecision:
    """The guard. Pure: no I/O.

    - nothing to remove: allowed (removes nothing);
    - `confirmed` by an operator: every candidate may go;
    - the database lists no plans (`listed_plans == 0`): refused, whatever the count;
    - more candidates than `removal_limit(max_plan_removals, published)`: refused;
    - otherwise every candidate may go.
    A refusal is all-or-nothing: a run never removes some of what it was refused.
    """
    names = tuple(sorted(dict.fromkeys(candidates)))
    limit = removal_limit(max_plan_removals, published)
    refusal = None
    if names and not confirmed:
        if listed_plans <= 0:
            refusal = EMPTY_DATABASE
        elif len(names) > limit:
            refusal = OVER_LIMIT
    return RemovalDecision(candidates=names, remove=() if refusal else names, refusal=refusal, limit=limit,
                           listed_plans=listed_plans, published=published, confirmed=confirmed,
                           max_plan_removals=max_plan_removals)


# -- with its inputs read, and the one way to remove -----------------------------------------------------


def judge(db, s3, settings, candidates: Iterable[str], *, confirmed: bool = False,
          listed_plans: int | None = None, published: int | None = None) -> RemovalDecision:
    """`decide_removals` with its inputs read: the plans the database lists, the plan folders in the bucket
    (either may be given when the caller has just counted them)."""
    candidates = list(candidates)
    if not candidates:
        return decide_removals((), listed_plans=listed_plans or 0, published=published or 0,
                               max_plan_removals=settings.max_plan_removals, confirmed=confirmed)
    if listed_plans is None:
        from memora_cdn.engine.read import list_plans

        listed_plans = len(list_plans(db))
    if published is None:
        from memora_cdn.engine.publish import list_published_plans

        published = len(list_published_plans(s3, settings.bucket))
    return decide_removals(candidates, listed_plans=listed_plans, published=published,
                           max_plan_removals=settings.max_plan_removals, confirmed=confirmed)


def remove_plans(s3, settings, decision: RemovalDecision, *, reason: str,
                 listings: dict[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
    """Remove what `decision` allows: each plan's files move to the private trash (`engine.trash`), where they
    stay restorable for `trash_retention_days`. Raises `RemovalRefused` for a refused decision.
    Returns plan -> the removed `plans/...` keys (what the CDN must purge)."""
    if decision.refused:
        raise RemovalRefused(decision)
    from memora_cdn.engine.trash import trash_plan

    removed: dict[str, list[str]] = {}
    for plan_id in decision.remove:
        listed = (listings or {}).get(plan_id)
        removed[plan_id] = trash_plan(s3, settings.bucket, plan_id, listed=listed, reason=reason,
                                      concurrency=settings.upload_concurrency)
        log.info("plan %s: %s; moved its %d file(s) to the trash (restorable for %d days: "
                 "python -m memora_cdn restore %s)", plan_id, reason, len(removed[plan_id]),
                 settings.trash_retention_days, plan_id)
    return removed
