"""The portal pages (Flask blueprint). The foundation serves the landing page; search, dataset, launch,
catalogue and operator pages arrive with their issues."""
from flask import Blueprint, current_app, render_template

blueprint = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/static/web")


@blueprint.get("/")
def index() -> str:
    broker = current_app.extensions["panbroker"]
    return render_template("index.html", summary=broker.health.summary())


@blueprint.get("/healthz")
def healthz() -> tuple[dict, int]:
    """Liveness of the broker itself (not of the facilities)."""
    return {"status": "ok"}, 200
