"""Code around each statement an engine sends to its driver, hooked on the engine's dialect.

The slow-query timing and the SQL spans both need a start and an end per statement. SQLAlchemy's
cursor events would give them, but any listener on an engine makes every new connection join its
own event dispatch to the engine's, about 158,000 instructions per `engine.connect()`, that is per
request (bench/README.md, "The `db` route, counted"). Dialect events are not joined per connection:
one `do_execute` listener (and its `executemany` and no-parameter siblings) calls the dialect's own
method through the hooks and returns True, so that SQLAlchemy does not execute the statement again.

A hook is `hook(execute, executemany) -> execute`: it gets the execute below it and returns one that
wraps it. Hooks added later run outside those added earlier. A failing statement's exception leaves
the hooks as it would leave any caller; SQLAlchemy then runs the dialect's `handle_error` listeners.
Because SQLAlchemy stops at the first `do_execute` listener that returns True, one added to the engine
after these never runs; add it before, or as a hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine

# (DBAPI cursor, statement, parameters, execution context); no-parameter statements get None.
Execute = Callable[[Any, str, Any, Any], None]
Hook = Callable[[Execute, bool], Execute]

_CHAIN = "_observability_statement_hooks"  # on the dialect, which an engine's copies share


def add_statement_hook(engine: Engine, hook: Hook) -> None:
    """Wraps every statement `engine` and its copies execute in `hook`, outside the hooks added before."""
    dialect = engine.dialect
    chain = getattr(dialect, _CHAIN, None)
    if chain is None:
        chain = _Chain(dialect)
        setattr(dialect, _CHAIN, chain)
    chain.add(hook)


class _Chain:
    """The dialect's three execute methods, each wrapped by every hook, and the listeners that run them."""

    def __init__(self, dialect: Dialect) -> None:
        self.single: Execute = dialect.do_execute
        self.many: Execute = dialect.do_executemany

        def without_parameters(cursor: Any, statement: str, _parameters: Any, context: Any) -> None:
            dialect.do_execute_no_params(cursor, statement, context)

        self.no_parameters: Execute = without_parameters
        event.listen(dialect, "do_execute", self._execute)
        event.listen(dialect, "do_executemany", self._executemany)
        event.listen(dialect, "do_execute_no_params", self._execute_no_parameters)

    def add(self, hook: Hook) -> None:
        self.single = hook(self.single, False)
        self.many = hook(self.many, True)
        self.no_parameters = hook(self.no_parameters, False)

    def _execute(self, cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        self.single(cursor, statement, parameters, context)
        return True

    def _executemany(self, cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        self.many(cursor, statement, parameters, context)
        return True

    def _execute_no_parameters(self, cursor: Any, statement: str, context: Any) -> bool:
        self.no_parameters(cursor, statement, None, context)
        return True
