"""Templates a production names, checked at import rather than at the first render: a cut's
``template``, its ``overrides`` (parameters the template must declare) and the project's
``default_template`` / ``animation_template``. Shipped and studio templates both count (the
workflows library's own lookup)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workflows import WorkflowError, list_templates, load_template

if TYPE_CHECKING:
    from db.production_file import ProductionFile

# What a render uses when the file names none (db.briefs reads the same settings).
DEFAULTS = {"default_template": "keyframe", "animation_template": "animatediff_loop"}


def template_problems(production: ProductionFile) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    known = list_templates()
    parameters: dict[str, set[str] | None] = {}  # None: the template itself is broken

    def check(name: Any, where: str) -> set[str] | None:
        if not isinstance(name, str) or name not in known:
            listed = ", ".join(known) or "none"
            problems.append((where, f"unknown template {name!r} (known: {listed})"))
            return None
        if name not in parameters:
            try:
                parameters[name] = set(load_template(name).parameters)
            except WorkflowError as exc:
                problems.append((where, f"template {name!r} cannot be used: {exc}"))
                parameters[name] = None
        return parameters[name]

    settings = production.project.settings
    chosen = {}
    for key, fallback in DEFAULTS.items():
        if key in settings:
            chosen[key] = check(settings[key], f"project.settings.{key}")
        elif fallback in known:
            chosen[key] = check(fallback, f"project.settings.{key}")
    animation = chosen.get("animation_template") or set()
    for e, episode in enumerate(production.episodes):
        for s, scene in enumerate(episode.scenes):
            for c, cut in enumerate(scene.cuts):
                where = f"episodes[{e}].scenes[{s}].cuts[{c}]"
                if cut.template is not None:
                    declared = check(cut.template, f"{where}.template")
                    name = cut.template
                else:
                    declared = chosen.get("default_template")
                    name = settings.get("default_template", DEFAULTS["default_template"])
                if declared is None or not cut.overrides:
                    continue
                # An override reaches every phase's template: any of them may declare it.
                allowed = declared | animation
                for key in cut.overrides:
                    if key not in allowed:
                        problems.append(
                            (
                                f"{where}.overrides.{key}",
                                f"template {name!r} has no parameter {key!r} "
                                f"(parameters: {', '.join(sorted(allowed)) or 'none'})",
                            )
                        )
    return problems


__all__ = ["template_problems"]
