"""Which stored outputs may serve a call: the code that computed them and the point layout
they were computed with, decided once per call and counted for one warning at its end.

Every stored output carries the fingerprint of the code that computed it (per file, or
per point when a file mixes code) and, for product chunks, the axis order its points were
built in. Two policies decide whether it stands for the current call:

- **code** (``on_code_change``): ``"warn"`` serves other code's outputs and warns once,
  with how many points of this call they are; ``"recompute"`` never serves them;
  ``"ignore"`` serves them silently. Outputs whose code is unknown (None) always serve.
- **axis order**: with the default enumerator a point is the tuple of its axis values in
  ``axis_order``, so ``exec_fn`` may read its values by position: an output computed for
  the tuple in another order answers another question. It is never served; one warning
  names both orders and how to keep using the stored outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from swarm_memo.core.userwarn import warn_user
from swarm_memo.errors import AxisOrderWarning, CodeChangedWarning, SpecError


class CodeChange(str, Enum):
    """The ``on_code_change`` policy, parsed once at the edge: whether outputs stored by
    other code may serve a call, and whether serving them warns. Compares equal to its
    string."""

    WARN = "warn"
    RECOMPUTE = "recompute"
    IGNORE = "ignore"

    @classmethod
    def parse(cls, value: object) -> CodeChange:
        """The policy named ``value``; a SpecError naming it otherwise."""
        for policy in cls:
            if isinstance(value, str) and value == policy.value:
                return policy
        options = ", ".join(repr(policy.value) for policy in cls)
        raise SpecError(f"on_code_change must be one of {options}; got {value!r}")

    @property
    def serves_other_code(self) -> bool:
        return self is not CodeChange.RECOMPUTE

    @property
    def warns(self) -> bool:
        return self is CodeChange.WARN


@dataclass
class ServePolicy:
    """Decides, and counts, what stored outputs serve one call."""

    code: str | None
    """Fingerprint of the code computing this call's points (None: unknown)."""
    on_code_change: CodeChange
    function_name: str
    axes: tuple[str, ...]
    """This call's axis order (the layout of a default point tuple)."""
    served_other_code: int = 0
    refused_other_code: int = 0
    other_orders: dict[tuple[str, ...], int] = field(default_factory=dict)
    """Stored axis orders refused, with how many points of this call they held."""

    # ------------------------------------------------------------------ code

    def code_allowed(self, code: str | None) -> bool:
        """Whether outputs computed by code with this fingerprint may serve this call."""
        if code is None or self.code is None or code == self.code:
            return True
        return self.on_code_change.serves_other_code

    def codes_allowed(self, codes: Iterable[str | None]) -> bool:
        return all(self.code_allowed(code) for code in set(codes))

    def served(self, codes: Sequence[str | None]) -> None:
        """Count outputs served to this call, one code per output."""
        if self.code is None:
            return
        # counted in C: a warm run serves every stored output through here
        self.served_other_code += len(codes) - codes.count(self.code) - codes.count(None)

    # ------------------------------------------------------------------ axis order

    def same_axes(self, stored_axes: Sequence[str]) -> bool:
        """Whether product outputs stored in ``stored_axes`` order are this call's order."""
        return tuple(stored_axes) == self.axes

    def refused_order(self, stored_axes: Sequence[str], count: int) -> None:
        """Count ``count`` points of this call stored in another axis order (never
        served) for the warning."""
        stored = tuple(stored_axes)
        self.other_orders[stored] = self.other_orders.get(stored, 0) + count

    # ------------------------------------------------------------------ the warning

    def warn(self, total_points: int) -> None:
        """One warning per kind at the end of the call, attributed to the user's line."""
        if self.served_other_code and self.on_code_change.warns:
            warn_user(
                f"swarm-memo: {self.served_other_code} of the {total_points} points of this "
                f"call were served from results stored by other code than the current "
                f"{self.function_name} (on_code_change='recompute' recomputes them, "
                "'ignore' silences this)",
                CodeChangedWarning,
            )
        for stored, count in self.other_orders.items():
            warn_user(
                f"swarm-memo: {count} stored point(s) of this request were computed with "
                f"points ordered as {stored}, but this memo orders them as {self.axes}: "
                "`point` would mean something else, so they are computed again. If "
                f"exec_fn reads points the same way in both orders, pass "
                f"axis_order={list(stored)!r} to keep using the stored results.",
                AxisOrderWarning,
            )
