"""Stand-ins for triton and triton.language when Triton is not installed, so cells that define
kernels still run (Zone 4)."""

from __future__ import annotations

__all__ = ["missing_triton"]


# ============================================================================ Triton
class _Placeholder:
    """Any attribute, any call: enough for `@triton.jit` and `tl.constexpr` annotations to load."""

    def __getattr__(self, name):
        return _Placeholder()

    def __call__(self, *args, **kwargs):
        return _Placeholder()


class _TritonStandIn:
    """Stands for the triton module when it is not installed: `jit` returns the function unchanged."""

    available = False

    @staticmethod
    def jit(fn=None, **kwargs):
        if fn is None:
            return lambda f: f
        return fn

    def __getattr__(self, name):
        return _Placeholder()


def missing_triton() -> tuple[_TritonStandIn, _Placeholder]:
    """Stand-ins (triton, tl) for a notebook without Triton, so cells that define kernels still run.

    `@triton.jit` leaves the function as plain Python and `tl.constexpr` annotations load;
    nothing can be launched. Install Triton with: pip install 'attnlab[triton]' (Linux).
    """
    return _TritonStandIn(), _Placeholder()
