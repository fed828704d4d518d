"""Set-parameters callbacks: apply what a node can change live, refuse the rest with a reason.

Silent acceptance of a parameter the node only reads at start-up is a bug: ``ros2 param
set`` would report success and nothing would change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rcl_interfaces.msg import SetParametersResult

RESTART_REASON = "read at start-up only: restart the node to change it"


def live_parameters_callback(
    startup_only: Iterable[str],
    checks: dict[str, Callable[[object], str | None]] | None = None,
    apply: Callable[[list], None] | None = None,
) -> Callable[[list], SetParametersResult]:
    """A callback for ``Node.add_on_set_parameters_callback``.

    Args:
        startup_only: parameter names refused with ``RESTART_REASON``.
        checks: name -> function of the new value returning a reason to refuse, or None.
            Names in neither list are read live by the node (``get_parameter`` per use).
        apply: called with the accepted parameters (all checks passed) to update state.
    """
    startup_only = frozenset(startup_only)
    checks = dict(checks or {})

    def on_set_parameters(params) -> SetParametersResult:
        for p in params:
            if p.name in startup_only:
                return SetParametersResult(successful=False, reason=f"{p.name}: {RESTART_REASON}")
            check = checks.get(p.name)
            reason = check(p.value) if check is not None else None
            if reason:
                return SetParametersResult(successful=False, reason=f"{p.name}: {reason}")
        if apply is not None:
            apply(params)
        return SetParametersResult(successful=True)

    return on_set_parameters


def in_range(low: float, high: float) -> Callable[[object], str | None]:
    """A check: the value is a number in [low, high]."""

    def check(value) -> str | None:
        if not isinstance(value, (int, float)) or not low <= float(value) <= high:
            return f"must be a number in [{low:g}, {high:g}], got {value!r}"
        return None

    return check
