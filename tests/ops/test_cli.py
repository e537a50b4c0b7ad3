"""`anime render --deployment` and `anime reproduce`: wrong input is refused before a run exists."""

from __future__ import annotations

from typer.testing import CliRunner

from anime.cli import app
from db.models import Verdict
from tests.ops.test_api import _ids, _judged_job

runner = CliRunner()


def test_render_deployment_refuses_bad_parameters_naming_each():
    # Parameters are checked before the Prefect API is contacted: the closed port never is.
    result = runner.invoke(
        app,
        env={"PREFECT_API_URL": "http://127.0.0.1:9/api"},
        args=[
            "render",
            "moonlit-courier",
            "1",
            "--deployment",
            "render-episode",
            "--budget",
            "0",
            "-p",
            "colour=blue",
            "-p",
            "scoring_block=offline",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "render-episode/render-episode: 2 bad parameter(s); no run was created" in result.stderr
    assert "parameter 'attempt_budget': Input should be greater than or equal to 1" in result.stderr
    assert "parameter 'colour' is not a parameter of this deployment" in result.stderr


def test_render_options_map_to_deployment_parameters():
    from anime.cli.ops import _parse_params, render_parameters
    from db.models import Phase

    options = {
        "project": "moonlit-courier",
        "episode": 2,
        "phase": Phase.ANIMATION,
        "until": Phase.QUALITY,
        "renderer": "comfyui",
        "server": ["gpu-1", "gpu-2"],
        "budget": 5,
    }
    extra = _parse_params(["thresholds_block=strict", "attempt_budget=4"])
    assert render_parameters(options, extra) == {
        "project": "moonlit-courier",
        "episode": 2,
        "phase": "animation",
        "until": "quality",
        "renderer": "comfyui",
        "comfyui_servers": ["gpu-1", "gpu-2"],
        "attempt_budget": 4,  # -p wins over --budget
        "thresholds_block": "strict",
    }


def test_param_without_deployment_is_an_error():
    result = runner.invoke(app, ["render", "moonlit-courier", "1", "-p", "x=1"])
    assert result.exit_code == 1
    assert "--param and --wait go with --deployment" in result.stderr


def test_reproduce_refuses_unknown_jobs_and_jobs_without_a_workflow(production):
    _, _, cuts = _ids()
    never_rendered = _judged_job(cuts[0], 1, Verdict.FAILED, workflow=False)
    missing = runner.invoke(app, ["reproduce", "999999"])
    assert missing.exit_code == 1 and "error: no job with id 999999" in missing.stderr
    unrendered = runner.invoke(app, ["reproduce", str(never_rendered)])
    assert unrendered.exit_code == 1
    assert f"job {never_rendered} has no stored workflow to reproduce" in unrendered.stderr


def test_status_counts_reproductions_apart_from_the_episodes_jobs(production):
    from db import jobs as db_jobs
    from db.engine import session_scope
    from db.models import Job, JobKind, JobStatus, Phase

    _, _, cuts = _ids()
    original = _judged_job(cuts[0], 1, Verdict.PASSED)
    with session_scope() as s:
        job = s.get(Job, original)
        job.status = JobStatus.PASSED
        copy, _ = db_jobs.get_or_create_job(
            s,
            project_id=job.project_id,
            phase=Phase.GENERATION,
            kind=JobKind.REPRODUCTION,
            attempt=2,
            cut_id=cuts[0],
            renderer="animatic",
            parent_job_id=original,
        )
        copy.status = JobStatus.PASSED
    result = runner.invoke(app, ["status", "moonlit-courier"])
    assert result.exit_code == 0, result.output
    assert "    jobs: 1 passed\n" in result.output  # the original only
    assert "  reproductions: 1 identical, 0 differ" in result.output
