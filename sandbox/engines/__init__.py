"""The engines the native sandbox runs as local processes, one module each with everything about it:
``postgres`` (pg_ctl clusters), ``redis_server``, ``elasticsearch`` (the integ-test-zip on a JDK), and
``processes``, what they share: process groups with pid files and the runners of ``sandbox.components``.
The tests and the benchmarks start their throwaway PostgreSQL and Redis from here too."""
