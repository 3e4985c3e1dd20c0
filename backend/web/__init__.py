"""The Flask application factory."""
from __future__ import annotations

from flask import Flask

from backend.backfill.dispatcher import Dispatcher
from backend.backfill.notify import Notifier
from backend.backfill.service import check_configuration
from backend.config import Config
from backend.db import create_db_engine
from backend.logs import configure_logging
from backend.metrics import web as metrics_web
from backend.web import auth_tokens, database, errors, hardening, health, rate_limits
from backend.web.backfills import api as backfills_api
from backend.web.backfills import page as backfills_page
from backend.web.flask_commands import register_cli
from backend.web.shop import auth, orders, products


def create_app(config: Config | None = None, dispatcher: Dispatcher | None = None,
               notifier: Notifier | None = None) -> Flask:
    """`dispatcher` hands the batches of a resumed or retried Celery run to the workers
    at once (wsgi.py passes the Celery one when a broker is configured); without it the
    workers' recovery pass picks them up. `notifier` sends the webhook notifications of
    the controls' status changes (wsgi.py: the workers' with a broker; without one, a
    thread of this process when BACKFILL_NOTIFY_WEBHOOK_URL is set)."""
    config = config or Config.from_env()
    configure_logging(config.log_format)  # LOG_FORMAT=json: one JSON object per line
    check_configuration(config)  # BACKFILL_MODULES and health check names, before serving
    app = Flask(__name__)
    app.config["SHOP"] = config
    app.extensions["backfill_dispatcher"] = dispatcher
    app.extensions["backfill_notifier"] = notifier
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # JSON bodies here are small; refuse floods (413)
    app.json.ensure_ascii = False  # product names in every script, readable as is
    app.json.sort_keys = False

    database.init_app(app, create_db_engine(config.database_url))
    errors.init_app(app)
    hardening.init_app(app, config.security)  # headers, trusted hosts, no Host-built redirects
    auth_tokens.init_app(app, config.security)  # customers' bearer tokens
    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(products.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(backfills_api.bp)
    app.register_blueprint(backfills_api.openapi_bp)
    app.register_blueprint(backfills_page.bp)
    rate_limits.init_app(app, config)  # after the routes it limits are registered
    metrics_web.init_app(app)  # GET /metrics behind the admin token; after the limiter, which it shares
    register_cli(app)
    return app
