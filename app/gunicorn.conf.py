"""gunicorn settings for the sample service (`gunicorn -c gunicorn.conf.py wsgi:app`, from app/).

Workers come from WEB_CONCURRENCY (gunicorn's own variable), the address from APP_BIND. The app is
preloaded in the master: the schema is created once, the master serves /metrics on its own port,
its objects are frozen for the garbage collector before each fork, and each worker starts its trace
exporter after fork. Workers are not recycled (max_requests 0); a worker that dies is replaced, and
its metric files are folded into the archive (`mark_dead`).
"""

import os

# prometheus_client writes there from the moment it is imported, just below.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from observability import process
from observability.gunicorn import child_exit, on_starting, post_fork, pre_fork, when_ready

process.defer_until_fork()

bind = [os.environ.get("APP_BIND", "127.0.0.1:8000")]
preload_app = True
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 0
# Oversized request lines and headers are refused by gunicorn with a 400 before reaching Flask.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
logger_class = "observability.gunicorn.JsonLogger"
accesslog = None  # the app writes its own access records (event: api_access)
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

__all__ = ["child_exit", "on_starting", "post_fork", "pre_fork", "when_ready"]
