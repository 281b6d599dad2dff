"""Settling a scheduled batch: every decision its rows make possible, made in one transaction.

`settle` reads the batch's trials and rung table and makes the decisions they call for — the
same ones whoever calls it, so a worker ending a trial's run and the reaper (for a batch no
running trial will settle) can both call it. It runs under the batch's row lock, so two
deciders never interleave, and each move is guarded by the trial's status (models/trials.py),
so a decision is made once. It returns the trials it queued, to publish after the commit.

- Successive halving (sha, asha, hyperband), per bracket and rung in order: promote the waiting
  trials tune/plans.py's `promotions` picks, and stop the others once the rung is closed.
- PBT, once no trial is queued or running (every live trial paused at the same generation):
  the bottom of the generation is stopped and replaced by clones of the top — forks at that
  epoch, with explored hyperparameters — and the rest go on.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from backprop import TrainSpec
from backprop.fork import FIXED
from models import trials
from models.base import utcnow
from models.status import TERMINAL, JobStatus
from models.tables import Batch, Job, JobTag
from models.trials import Decision, Rung
from tune import pbt, plans
from tune.schedulers import Pbt, _Halving, _Scheduler
from tune.space import Choice, Dimension, Space, set_paths

PAUSED, QUEUED, RUNNING = JobStatus.PAUSED, JobStatus.QUEUED, JobStatus.RUNNING
_SPACE: TypeAdapter[Any] = TypeAdapter(Space)
_COLUMNS = (
    Job.id, Job.trial, Job.status, Job.epochs_done, Job.epochs_total, Job.spec, Job.grid_point,
    Job.owner, Job.name, Job.tags, Job.dataset_id, Job.latest_loss, Job.best_loss, Job.root_id,
)  # fmt: skip


def settle(s: Session, batch: Batch, cfg: _Scheduler, actor: str) -> list[uuid.UUID]:
    """Make every decision the batch's rows call for; returns the trials queued."""
    jobs = s.execute(select(*_COLUMNS).where(Job.batch_id == batch.id)).all()
    rows = list(s.scalars(select(Rung).where(Rung.batch_id == batch.id)))
    if not jobs:
        return []
    d = _Decider(s, batch, cfg, actor)
    if isinstance(cfg, _Halving):
        d.halve(jobs, rows)
    elif isinstance(cfg, Pbt):
        d.generation(jobs, rows)
    return d.queued


class _Decider:
    def __init__(self, s: Session, batch: Batch, cfg: Any, actor: str) -> None:
        self.s, self.batch, self.cfg, self.actor = s, batch, cfg, actor
        self.now = utcnow()
        self.queued: list[uuid.UUID] = []

    def log(self, job_id: uuid.UUID, trial: int, action: str, epoch: int, rung: int | None,
            **detail: Any) -> None:  # fmt: skip
        self.s.add(Decision(batch_id=self.batch.id, job_id=job_id, trial=trial, action=action,
                            epoch=epoch, rung=rung, detail=detail, actor=self.actor))  # fmt: skip

    def promote(self, job: Any, row: Rung, stop_at: int | None, **detail: Any) -> None:
        if trials.promote(self.s, job.id, stop_at, self.now):
            row.promoted = True
            self.queued.append(job.id)
            self.log(job.id, job.trial, "promoted", row.epoch, row.rung, next_stop=stop_at,
                     **detail)  # fmt: skip

    def stop(self, job: Any, row: Rung, reason: str) -> None:
        if trials.stop(self.s, job.id, reason, self.now):
            self.log(job.id, job.trial, "stopped", row.epoch, row.rung, reason=reason)

    def halve(self, jobs: Sequence[Any], rows: list[Rung]) -> None:
        """Successive halving, bracket by bracket, rung by rung."""
        cfg, max_epochs = self.cfg, jobs[0].epochs_total
        by_trial = {j.trial: j for j in jobs}
        at: dict[tuple[int, int], list[Rung]] = defaultdict(list)
        for row in rows:
            at[row.bracket, row.rung].append(row)
        for b, (milestones, _) in enumerate(plans.brackets(cfg, max_epochs)):
            entrants = {j.trial for j in jobs if plans.bracket_of(cfg, j.trial, max_epochs) == b}
            closed = True
            for i, epoch in enumerate(milestones):
                reached = {r.trial: r for r in at[b, i]}
                closed = closed and all(
                    t in reached or by_trial[t].status in TERMINAL for t in entrants
                )
                waiting = {t for t, r in reached.items()
                           if not r.promoted and by_trial[t].status == PAUSED}  # fmt: skip
                promoted = {t for t, r in reached.items() if r.promoted}
                records = [plans.Record(t, r.value) for t, r in reached.items()]
                up, down = plans.promotions(cfg, records, promoted, waiting, closed)
                order = [r.trial for r in plans.ranked(records, cfg.maximise)]
                nxt = plans.next_stop(cfg, b, max_epochs, epoch)
                for t in up:
                    self.promote(by_trial[t], reached[t], nxt, rank=order.index(t) + 1,
                                 of=len(order), value=reached[t].value)  # fmt: skip
                kept = plans.keep(len(order), cfg.reduction_factor)
                for t in down:
                    why = _halved(cfg, i, epoch, reached[t].value, order.index(t) + 1, len(order),
                                  kept)  # fmt: skip
                    self.stop(by_trial[t], reached[t], why)
                entrants = promoted | set(up)

    def generation(self, jobs: Sequence[Any], rows: list[Rung]) -> None:
        """PBT: once every live trial paused at the same generation, exploit and explore."""
        if any(j.status in (QUEUED, RUNNING) for j in jobs):
            return
        paused = [j for j in jobs if j.status == PAUSED]
        if not paused:
            return
        epoch = paused[0].epochs_done
        row_of = {r.job_id: r for r in rows if r.epoch == epoch}
        members = [j for j in paused if j.id in row_of]
        if not members:
            return
        g = row_of[members[0].id].rung
        records = [plans.Record(j.trial, row_of[j.id].value) for j in members]
        rng = pbt.generator(self.batch.seed, g)
        by_trial = {j.trial: j for j in members}
        nxt = plans.next_stop(self.cfg, 0, jobs[0].epochs_total, epoch)
        losers = set()
        for loser, source in pbt.exploits(self.cfg, records, rng):
            self.clone(by_trial[loser], by_trial[source], row_of, epoch, g, nxt, rng)
            losers.add(loser)
        for j in sorted(members, key=lambda j: j.trial):
            if j.trial not in losers:
                self.promote(j, row_of[j.id], nxt, value=row_of[j.id].value)

    def clone(self, loser: Any, source: Any, row_of: dict, epoch: int, g: int,
              nxt: int | None, rng: Any) -> None:  # fmt: skip
        """Stop `loser`; queue a fork of `source` at `epoch` with explored values in its slot."""
        point = pbt.explore(self.cfg, source.grid_point or {}, self.dims(), rng)
        try:
            spec = TrainSpec.model_validate(set_paths(source.spec, point)).model_dump(mode="json")
        except (ValidationError, ValueError):  # a value the spec refuses: keep the source's
            point, spec = dict(source.grid_point or {}), source.spec
        clone_id = uuid.uuid4()
        self.s.execute(insert(Job), [{
            "id": clone_id, "owner": source.owner, "name": _clone_name(source.name, g),
            "tags": source.tags, "spec": spec, "dataset_id": source.dataset_id,
            "batch_id": self.batch.id, "grid_point": point, "epochs_total": source.epochs_total,
            "epochs_done": epoch, "latest_loss": source.latest_loss,
            "best_loss": source.best_loss, "parent_id": source.id, "forked_at_epoch": epoch,
            "root_id": source.root_id or source.id, "trial": loser.trial, "stop_at": nxt,
            "published_at": self.now, "status": QUEUED,
        }])  # fmt: skip
        if source.tags:
            self.s.execute(insert(JobTag), [
                {"job_id": clone_id, "key": k, "value": v} for k, v in source.tags.items()
            ])  # fmt: skip
        self.queued.append(clone_id)
        value = row_of[loser.id].value
        reason = (f"PBT generation {g} (epoch {epoch}): {self.cfg.metric} {value:.6g} in the "
                  f"bottom {self.cfg.quantile_fraction:g}; its slot continues in job {clone_id}, "
                  f"a clone of trial {source.trial}")  # fmt: skip
        self.stop(loser, row_of[loser.id], reason)
        self.log(clone_id, loser.trial, "cloned", epoch, g, source=str(source.id),
                 source_trial=source.trial, replaces=str(loser.id), point=point,
                 source_point=source.grid_point)  # fmt: skip

    def dims(self) -> dict[str, Dimension]:
        """What PBT explores: the batch's sampled and listed paths a fork may change."""
        out: dict[str, Dimension] = {
            path: Choice(choice=values) for path, values in self.batch.grid.items()
        }
        out |= _SPACE.validate_python(self.batch.space)
        return {p: d for p, d in out.items() if p.split(".")[0] not in FIXED}


def _clone_name(name: str, g: int) -> str:
    return f"{name.split(' (clone')[0]} (clone, generation {g})"[:200]


def _halved(cfg: Any, rung: int, epoch: int, value: float | None, rank: int, n: int,
            kept: int) -> str:  # fmt: skip
    shown = "none" if value is None else f"{value:.6g}"
    return (f"rung {rung} (epoch {epoch}): {cfg.metric} {shown} ranked {rank} of {n}; "
            f"the best {kept} went on")  # fmt: skip
