"""The domain API: `anime api` serves it alone, `anime server` next to Prefect's.

Routes (OpenAPI at /docs and /openapi.json):
  GET  /api/anime/projects                    projects with ids; /{slug}/characters, /episodes
  POST /api/anime/jobs/{id}/reproduce         run the reproduce-job deployment for a job
  GET  /api/anime/quality/{job_id}            scores, thresholds, verdicts, explanation
  POST /api/anime/characters/{id}/variations  add an outfit / expression / pose
  GET  /api/anime/episodes/{id}/scenes        scenes, cuts, statuses, latest gates
  POST /api/anime/deployments/{name}/runs     any studio deployment, parameters checked first
  GET  /health                                database, Prefect API, ComfyUI servers
  GET  /api/anime/artifacts/{id}/thumbnail    JPEG thumbnail (a clip's poster frame); /file
  GET  /api/anime/episodes/{id}/reel         the episode's newest reel (MP4 + contact sheet)
  GET  /api/anime/reels/{id}[/file|/contact-sheet]  a stored reel, its video, its sheet
  GET  /review/episodes/{id}                  the review page; decisions: see anime/api/review
"""

from __future__ import annotations

from fastapi import FastAPI

from anime.api import characters, episodes, health, jobs, media, projects, review, runs
from anime.api.errors import install_error_handlers


def create_app() -> FastAPI:
    app = FastAPI(
        title="Tower Anime domain API",
        version="1",
        description="Reproduce jobs, read quality, add character variations, follow episodes.",
    )
    install_error_handlers(app)
    for module in (projects, jobs, characters, episodes, runs, health, media, review):
        app.include_router(module.router)
    return app
