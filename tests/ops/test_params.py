"""Deployment definitions and their parameters, without a server."""

from __future__ import annotations

import pytest

from blocks.notifications import ProjectNotifications
from deployments.catalogue import ScheduleOverrides, deployment_specs
from deployments.params import (
    DEPLOYMENT_PARAMS,
    ParameterError,
    strict_parameter_schema,
    validate_parameters,
)


def test_prefect_yaml_and_parameter_models_match_the_flows():
    """Every deployment of prefect.yaml loads its flow, and its parameter model has exactly
    the flow's parameters with the flow's defaults: the strict schema cannot drift."""
    import inspect

    specs = deployment_specs()
    assert {s.name for s in specs} == set(DEPLOYMENT_PARAMS)
    for spec in specs:
        flow = spec.load_flow()
        assert flow.name == spec.name
        signature = inspect.signature(flow.fn)
        model = DEPLOYMENT_PARAMS[spec.name]
        assert list(model.model_fields) == list(signature.parameters), spec.name
        for name, parameter in signature.parameters.items():
            field = model.model_fields[name]
            if parameter.default is inspect.Parameter.empty:
                assert field.is_required(), (spec.name, name)
            else:
                assert field.get_default() == parameter.default, (spec.name, name)
        assert spec.work_pool["name"] == "anime-gpu"


def test_a_bad_parameter_is_named_with_what_is_wrong():
    with pytest.raises(ParameterError) as caught:
        validate_parameters(
            "render-episode",
            {"project": "moonlit-courier", "episode": "first", "colour": "blue", "phase": "x"},
        )
    problems = "\n".join(caught.value.problems)
    assert "'episode'" in problems and "valid integer" in problems
    assert "'colour' is not a parameter of this deployment" in problems
    assert "'phase'" in problems
    assert len(caught.value.problems) == 3
    assert "no run was created" in str(caught.value)


def test_rules_across_parameters_are_checked():
    with pytest.raises(ParameterError, match="phase 'quality' comes after until 'generation'"):
        validate_parameters(
            "render-episode",
            {"project": "p", "episode": 1, "phase": "quality", "until": "generation"},
        )
    with pytest.raises(ParameterError, match="renderer 'comfyui' needs comfyui_servers"):
        validate_parameters(
            "character-sheet", {"project": "p", "character": "aki", "renderer": "comfyui"}
        )
    with pytest.raises(LookupError, match="no deployment 'render-film'"):
        validate_parameters("render-film", {})


def test_only_given_parameters_are_sent_and_in_json_form():
    sent = validate_parameters(
        "render-episode/gpu-2", {"project": "p", "episode": "2", "until": "animation"}
    )
    assert sent == {"project": "p", "episode": 2, "until": "animation"}


def test_strict_schema_refuses_unknown_parameters_and_keeps_the_flow_order():
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    schema = strict_parameter_schema(DEPLOYMENT_PARAMS["render-episode"])
    assert schema["additionalProperties"] is False
    order = sorted(schema["properties"], key=lambda n: schema["properties"][n]["position"])
    assert order[:4] == ["project", "episode", "phase", "until"]
    # Prefect's own validator (the one its API runs) takes good parameters, refuses bad ones
    validate({"project": "p", "episode": 1, "phase": "animation"}, schema, raise_on_error=True)
    for bad in ({"project": "p", "episode": 1, "colour": 1}, {"project": "p", "episode": 0}):
        with pytest.raises(ValidationError):
            validate(bad, schema, raise_on_error=True)


def test_nightly_schedule_is_configurable_and_checked():
    nightly = {s.name: s for s in deployment_specs()}["nightly-render"]
    assert [(s.cron, s.timezone) for s in nightly.schedules] == [("0 2 * * *", "UTC")]
    moved = {
        s.name: s
        for s in deployment_specs(
            ScheduleOverrides(nightly_cron="30 3 * * *", timezone="Asia/Tokyo")
        )
    }
    assert [(s.cron, s.timezone) for s in moved["nightly-render"].schedules] == [
        ("30 3 * * *", "Asia/Tokyo")
    ]
    assert not moved["render-episode"].schedules  # only scheduled deployments change
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Olympus'"):
        ScheduleOverrides(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="not a cron expression"):
        ScheduleOverrides(nightly_cron="every night")


def test_routes_come_from_project_settings_and_bad_ones_are_named():
    routes = ProjectNotifications.from_settings(
        {
            "notifications": [
                "custom-webhook/studio",
                {"block": "slack-webhook/leads", "on": ["needs_review"]},
            ]
        }
    )
    assert [r.block for r in routes.routes_for("gate_closed")] == ["custom-webhook/studio"]
    assert [r.block for r in routes.routes_for("needs_review")] == [
        "custom-webhook/studio",
        "slack-webhook/leads",
    ]
    assert ProjectNotifications.from_settings({}).routes == []
    with pytest.raises(ValueError, match=r"notifications\[1\].block: .studio. must name"):
        ProjectNotifications.from_settings({"notifications": ["a/b", "studio"]})
    with pytest.raises(ValueError, match=r"notifications\[0\].on.0: unknown event .x."):
        ProjectNotifications.from_settings({"notifications": [{"block": "a/b", "on": ["x"]}]})
