"""Generation jobs and everything needed to reproduce their outputs exactly."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models.base import Base, str_enum
from db.vocabulary import JobKind, JobRunStatus, JobStatus, Phase, Verdict

if TYPE_CHECKING:
    from db.models.character import CharacterLook
    from db.models.quality import QualityScore


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        # One row per (subject, phase, kind, attempt): a re-run finds its job instead of adding one.
        UniqueConstraint(
            "project_id",
            "phase",
            "kind",
            "cut_id",
            "character_id",
            "attempt",
            "parent_job_id",
            name="uq_jobs_identity",
            postgresql_nulls_not_distinct=True,
        ),
        Index("ix_jobs_cut_phase", "cut_id", "phase"),
        Index("ix_jobs_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    phase: Mapped[Phase] = mapped_column(str_enum(Phase, "phase"))
    kind: Mapped[JobKind] = mapped_column(str_enum(JobKind, "job_kind"))
    cut_id: Mapped[int | None] = mapped_column(ForeignKey("cuts.id", ondelete="CASCADE"))
    character_id: Mapped[int | None] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE")
    )
    status: Mapped[JobStatus] = mapped_column(
        str_enum(JobStatus, "job_status"), default=JobStatus.PENDING
    )
    attempt: Mapped[int] = mapped_column(default=1)
    parent_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    story_bible_version: Mapped[int | None]
    renderer: Mapped[str] = mapped_column(String(50), default="comfyui")
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64))
    comfyui_prompt_id: Mapped[str | None] = mapped_column(String(64))
    comfyui_server: Mapped[str | None] = mapped_column(String(300))
    verdict: Mapped[Verdict | None] = mapped_column(str_enum(Verdict, "verdict"))
    explanation: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    params: Mapped[GenerationParams | None] = relationship(
        back_populates="job", cascade="all, delete-orphan", uselist=False
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        back_populates="job", order_by="Artifact.id", cascade="all, delete-orphan"
    )
    scores: Mapped[list[QualityScore]] = relationship(
        back_populates="job", order_by="QualityScore.id", cascade="all, delete-orphan"
    )
    parent: Mapped[Job | None] = relationship(remote_side=[id])
    runs: Mapped[list[JobRun]] = relationship(
        back_populates="job", order_by="JobRun.number", cascade="all, delete-orphan"
    )
    # The looks the cast had in this render (none listed: the base look); kept linked when the
    # production file changes or drops a look later.
    looks: Mapped[list[CharacterLook]] = relationship(
        secondary="job_looks", order_by="CharacterLook.id"
    )

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class JobRun(Base):
    """One run's work on a job: which flow run and process took it up, how it ended, and its
    timings. A job re-used by a later run (after an error or a crash) gets one more row, so
    every figure is that attempt's, never the failed run's."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job_id", "number", name="uq_job_runs_number"),
        Index("ix_job_runs_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int]  # 1, 2, ... per job
    status: Mapped[JobRunStatus] = mapped_column(
        str_enum(JobRunStatus, "job_run_status"), default=JobRunStatus.RUNNING
    )
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64))
    # The process that took the job up: a crash is told from a live run by it.
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int | None]
    process_started: Mapped[str | None] = mapped_column(String(32))
    comfyui_prompt_id: Mapped[str | None] = mapped_column(String(64))
    comfyui_server: Mapped[str | None] = mapped_column(String(300))
    # ComfyUI's outputs of the prompt, written the moment it finished (before downloading):
    # a run after a server restart (history lost) downloads them instead of rendering again.
    outputs: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    queue_wait_s: Mapped[float | None] = mapped_column(Float)
    execution_s: Mapped[float | None] = mapped_column(Float)  # ComfyUI's own timestamps
    download_s: Mapped[float | None] = mapped_column(Float)
    scoring_s: Mapped[float | None] = mapped_column(Float)
    outage_s: Mapped[float | None] = mapped_column(Float)  # waiting for a server to be back

    job: Mapped[Job] = relationship(back_populates="runs")


class JobLook(Base):
    __tablename__ = "job_looks"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    look_id: Mapped[int] = mapped_column(
        ForeignKey("character_looks.id", ondelete="CASCADE"), primary_key=True
    )


class GenerationParams(Base):
    """Everything that went into one render, including the graph exactly as submitted."""

    __tablename__ = "generation_params"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    template: Mapped[str | None] = mapped_column(String(100))
    template_version: Mapped[str | None] = mapped_column(String(50))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    checkpoint: Mapped[str | None] = mapped_column(Text)
    sampler: Mapped[str | None] = mapped_column(String(100))
    scheduler: Mapped[str | None] = mapped_column(String(100))
    steps: Mapped[int | None]
    cfg: Mapped[float | None] = mapped_column(Float)
    denoise: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None]
    height: Mapped[int | None]
    frames: Mapped[int | None]
    fps: Mapped[float | None] = mapped_column(Float)
    positive_prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    loras: Mapped[list[Any]] = mapped_column(default=list)
    controlnets: Mapped[list[Any]] = mapped_column(default=list)
    ipadapter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The complete graph as submitted, and the sha256 of its canonical JSON.
    workflow: Mapped[dict[str, Any]] = mapped_column(default=dict)
    workflow_sha256: Mapped[str | None] = mapped_column(String(64))
    # ComfyUI /system_stats (ComfyUI, Python, PyTorch, devices) or the local renderer's versions.
    environment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)

    job: Mapped[Job] = relationship(back_populates="params")


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32), default="image")  # image, animation, thumbnail
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    mime: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None]
    height: Mapped[int | None]
    frames: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    job: Mapped[Job] = relationship(back_populates="artifacts")


class RenderCancellation(Base):
    """A person's cancel of an episode's renders (one scene's, one cut's): runs that started
    before it submit none of those cuts again, even those that had no job yet; a run started
    after it renders them as usual."""

    __tablename__ = "render_cancellations"
    __table_args__ = (Index("ix_render_cancellations_episode_id", "episode_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    scene_id: Mapped[int | None] = mapped_column(ForeignKey("scenes.id", ondelete="CASCADE"))
    cut_id: Mapped[int | None] = mapped_column(ForeignKey("cuts.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text, default="")
    # The database's clock, like a run's start it is compared with (hosts' clocks differ).
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ProcessHeartbeat(Base):
    """A process that takes jobs up says, every few seconds, that it lives: a job run of
    another machine is told crashed from a live one by its process's last beat."""

    __tablename__ = "process_heartbeats"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    pid: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    process_started: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    # The database's clock: the machines' own clocks differ.
    beat_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DatabaseIdentity(Base):
    """This database's own id, made once (one row): the prompt ids its jobs give ComfyUI are
    derived from it, so two databases sharing a server (staging beside production) never
    give the same id to two different renders, nor cancel each other's."""

    __tablename__ = "database_identity"
    __table_args__ = (CheckConstraint("singleton", name="one_row"),)

    singleton: Mapped[bool] = mapped_column(primary_key=True, default=True, server_default=true())
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
