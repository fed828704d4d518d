"""Set-parameters callbacks: apply what a node can change live, refuse the rest with a reason.

Silent acceptance of a parameter the node only reads at start-up is a bug: ``ros2 param
set`` would report success and nothing would change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from rcl_interfaces.msg import SetParametersResult

RESTART_REASON = "read at start-up only: restart the node to change it"


def live_parameters_callback(
    startup_only: Iterable[str] | Mapping[str, str],
    checks: dict[str, Callable[[object], str | None]] | None = None,
    apply: Callable[[list], None] | None = None,
) -> Callable[[list], SetParametersResult]:
    """A callback for ``Node.add_on_set_parameters_callback``.

    Args:
        startup_only: parameter names refused with ``RESTART_REASON``, or name -> the
            reason to give (``RESTART_REASON`` is appended).
        checks: name -> function of the new value returning a reason to refuse, or None.
            Names in neither are read live by the node (``get_parameter`` per use) or by
            ``apply``.
        apply: called with the parameters once every check passed, to update the node's
            state; a ``ValueError`` it raises refuses the whole set with its message, so it
            must change nothing before it can no longer fail.
    """
    if isinstance(startup_only, Mapping):
        reasons = {name: f"{why}; {RESTART_REASON}" for name, why in startup_only.items()}
    else:
        reasons = dict.fromkeys(startup_only, RESTART_REASON)
    checks = dict(checks or {})

    def on_set_parameters(params) -> SetParametersResult:
        for p in params:
            if p.name in reasons:
                return SetParametersResult(successful=False, reason=f"{p.name}: {reasons[p.name]}")
            check = checks.get(p.name)
            reason = check(p.value) if check is not None else None
            if reason:
                return SetParametersResult(successful=False, reason=f"{p.name}: {reason}")
        if apply is not None:
            try:
                apply(params)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    return on_set_parameters


def in_range(low: float, high: float) -> Callable[[object], str | None]:
    """A check: the value is a number in [low, high]."""

    def check(value) -> str | None:
        if not isinstance(value, (int, float)) or not low <= float(value) <= high:
            return f"must be a number in [{low:g}, {high:g}], got {value!r}"
        return None

    return check
