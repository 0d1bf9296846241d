"""The WSGI applications the benchmark serves: one set of routes, several kinds of instrumentation."""
