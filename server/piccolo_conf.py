"""Piccolo's configuration: the engine comes from LANSHOU_DATABASE_URL, like the app's."""

from piccolo.conf.apps import AppRegistry

from server.db.engine import get_engine
from server.settings import load_settings

DB = get_engine(load_settings().database_url)

APP_REGISTRY = AppRegistry(apps=["server.piccolo_app"])
