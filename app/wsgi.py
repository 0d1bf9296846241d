"""WSGI entry point: `gunicorn -c app/gunicorn.conf.py wsgi:app` (run from app/)."""

from service import create_app

app = create_app()
