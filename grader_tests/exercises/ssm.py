"""State-space models (zone 3b): discretisation, the convolution kernel and Mamba's selective scan."""

from __future__ import annotations

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

# ================================================================ ssm_discretize


def _discretize_cases():
    rng = np.random.default_rng(7)
    a_diag = np.array([-1.0, -2.0, -0.5])
    b_diag = np.array([1.0, 0.5, 2.0])
    a_dense = np.array([[-1.0, 0.5], [-0.3, -2.0]])
    b_dense = np.array([[1.0], [0.5]])
    m = rng.normal(size=(3, 3))
    a3 = -2.0 * np.eye(3) + 0.4 * (m - m.T) + 0.2 * rng.normal(size=(3, 3))
    b3 = rng.normal(size=(3, 2))
    return [
        Case("diagonal A = [-1, -2, -0.5], B = [1, 0.5, 2], delta = 0.1", (a_diag, b_diag, 0.1)),
        Case("the same with a large step delta = 1.0", (a_diag, b_diag, 1.0)),
        Case(
            "dense A = [[-1, 0.5], [-0.3, -2]], B of shape (2, 1), delta = 0.5",
            (a_dense, b_dense, 0.5),
        ),
        Case(
            "diagonal A = [-1, -3], B of shape (2, 2) = [[1, 2], [0.5, -1]], delta = 0.5",
            (np.array([-1.0, -3.0]), np.array([[1.0, 2.0], [0.5, -1.0]]), 0.5),
        ),
        Case("dense (3, 3) A, B of shape (3, 2), delta = 0.3", (a3, b3, 0.3), hidden=True),
        Case(
            "diagonal A with B of shape (3, 2), delta = 2.0",
            (a_diag, np.stack([b_diag, -b_diag], 1), 2.0),
            hidden=True,
        ),
        Case("a tiny step delta = 1e-4", (a_diag, b_diag, 1e-4), hidden=True),
        Case(
            "float32 diagonal A and B, delta = 0.25",
            (a_diag.astype(np.float32), b_diag.astype(np.float32), 0.25),
            hidden=True,
            rtol=1e-5,
            atol=1e-6,
        ),
    ]


def _is_diag(A):
    return np.ndim(A) == 1


def _mat_or_diag(A, B, delta, f_diag, f_dense):
    A, B = np.asarray(A, float), np.asarray(B, float)
    if _is_diag(A):
        return f_diag(A, B, delta)
    return f_dense(A, B, delta)


def _col(x, B):
    return x if B.ndim == 1 else x[:, None]


def _disc_euler(A, B, delta):
    def diag(A, B, dt):
        return 1 + dt * A, dt * B

    def dense(A, B, dt):
        return np.eye(len(A)) + dt * A, dt * B

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_no_delta(A, B, delta):
    def diag(A, B, dt):
        return np.exp(A), _col(np.expm1(A) / A, B) * B

    def dense(A, B, dt):
        e = attnlab.expm(A)
        return e, np.linalg.solve(A, (e - np.eye(len(A))) @ B)

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_euler_b(A, B, delta):
    def diag(A, B, dt):
        return np.exp(dt * A), dt * B

    def dense(A, B, dt):
        return attnlab.expm(dt * A), dt * B

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_b_without_delta(A, B, delta):
    def diag(A, B, dt):
        return np.exp(dt * A), _col(np.expm1(dt * A) / (dt * A), B) * B

    def dense(A, B, dt):
        e = attnlab.expm(dt * A)
        return e, np.linalg.solve(dt * A, (e - np.eye(len(A))) @ B)

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_bilinear(A, B, delta):
    def diag(A, B, dt):
        inv = 1 / (1 - dt * A / 2)
        return inv * (1 + dt * A / 2), _col(inv * dt, B) * B

    def dense(A, B, dt):
        eye = np.eye(len(A))
        inv = np.linalg.inv(eye - dt * A / 2)
        return inv @ (eye + dt * A / 2), inv @ (dt * B)

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_elementwise_exp(A, B, delta):
    def dense(A, B, dt):
        e = np.exp(dt * A)
        return e, np.linalg.solve(dt * A, (e - np.eye(len(A))) @ (dt * B))

    return _mat_or_diag(A, B, delta, lambda A, B, dt: attnlab.ssm_discretize(A, B, dt), dense)


def _disc_wrong_gain(A, B, delta):
    """B_bar = (exp(dA) - I) B: forgot the (dA)^-1 factor (and the delta)."""

    def diag(A, B, dt):
        return np.exp(dt * A), _col(np.expm1(dt * A), B) * B

    def dense(A, B, dt):
        e = attnlab.expm(dt * A)
        return e, (e - np.eye(len(A))) @ B

    return _mat_or_diag(A, B, delta, diag, dense)


register(
    Exercise(
        name="ssm_discretize",
        zone="03_efficiency",
        reference=attnlab.ssm_discretize,
        points=3,
        cases=_discretize_cases,
        rtol=1e-6,
        atol=1e-10,
        description="zero-order hold: A_bar = exp(delta A), B_bar = (delta A)^-1 (exp(delta A) - I) delta B",
        mutants=[
            Mutant(
                "Euler",
                _disc_euler,
                "this is the Euler rule (A_bar = I + delta A, B_bar = delta B). The zero-order hold "
                "is exact for a constant input: A_bar = exp(delta A), B_bar = (delta A)^-1 "
                "(exp(delta A) - I) delta B.",
            ),
            Mutant(
                "exp(A) without delta",
                _disc_no_delta,
                "the step is missing: A_bar = exp(delta * A), not exp(A) (and delta enters B_bar too).",
            ),
            Mutant(
                "Euler B with ZOH A",
                _disc_euler_b,
                "B_bar = delta * B is Mamba's simplification (Euler for B). The exact zero-order hold "
                "is B_bar = (delta A)^-1 (exp(delta A) - I) delta B.",
            ),
            Mutant(
                "B_bar without delta",
                _disc_b_without_delta,
                "B_bar = (delta A)^-1 (exp(delta A) - I) * delta * B: keep the final factor delta "
                "(for diagonal A it simplifies to (exp(delta A) - 1) / A * B).",
            ),
            Mutant(
                "bilinear",
                _disc_bilinear,
                "this is the bilinear (Tustin) rule; the exercise asks for the zero-order hold: "
                "A_bar = exp(delta A).",
            ),
            Mutant(
                "elementwise exp of a dense matrix",
                _disc_elementwise_exp,
                "for a dense A, exp(delta A) is the MATRIX exponential (attnlab.expm), not np.exp "
                "applied entry by entry.",
            ),
            Mutant(
                "forgot (delta A)^-1",
                _disc_wrong_gain,
                "B_bar = (delta A)^-1 (exp(delta A) - I) delta B: the factor (delta A)^-1 is missing "
                "(for diagonal A: (exp(delta A) - 1) / A * B).",
            ),
        ],
    )
)

# ================================================================ ssm_kernel


def _kernel_cases():
    rng = np.random.default_rng(11)
    a, b, c = np.array([0.9, 0.5, -0.3]), np.array([1.0, 0.5, 2.0]), np.array([0.2, -1.0, 0.7])
    a_dense = np.array([[0.8, 0.1], [-0.2, 0.6]])
    a3 = 0.4 * rng.normal(size=(3, 3))
    return [
        Case(
            "diagonal A_bar = [0.9, 0.5, -0.3], B_bar = [1, 0.5, 2], C = [0.2, -1, 0.7], L = 6",
            (a, b, c, 6),
        ),
        Case(
            "dense A_bar = [[0.8, 0.1], [-0.2, 0.6]], B_bar = [1, 1], C = [1, -1], L = 5",
            (a_dense, np.array([1.0, 1.0]), np.array([1.0, -1.0]), 5),
        ),
        Case(
            "diagonal A_bar = [0.7, -0.4], B_bar of shape (2, 1), C of shape (1, 2), L = 4",
            (np.array([0.7, -0.4]), np.array([[1.0], [2.0]]), np.array([[0.5, 1.0]]), 4),
        ),
        Case("L = 1 (the kernel is just C . B_bar)", (a, b, c, 1), hidden=True),
        Case(
            "dense (3, 3) A_bar with B_bar of shape (3, 1) and C of shape (1, 3), L = 8",
            (a3, rng.normal(size=(3, 1)), rng.normal(size=(1, 3)), 8),
            hidden=True,
        ),
        Case("a long kernel, L = 40", (a, b, c, 40), hidden=True),
        Case(
            "float32 inputs, L = 7",
            (a.astype(np.float32), b.astype(np.float32), c.astype(np.float32), 7),
            hidden=True,
            rtol=1e-5,
            atol=1e-6,
        ),
    ]


def _kernel_generic(A_bar, B_bar, C, L, first_power=0, power=None, reverse=False, use_c=True):
    A_bar = np.asarray(A_bar, float)
    b = np.asarray(B_bar, float).reshape(-1)
    c = np.asarray(C, float).reshape(-1)
    out = []
    for k in range(first_power, first_power + L):
        if A_bar.ndim == 1:
            x = A_bar**k * b
        elif power == "elementwise":
            x = (A_bar**k) @ b
        else:
            x = np.linalg.matrix_power(A_bar, k) @ b
        out.append(c @ x if use_c else x.sum())
    out = np.array(out)
    return out[::-1].copy() if reverse else out


register(
    Exercise(
        name="ssm_kernel",
        zone="03_efficiency",
        reference=attnlab.ssm_kernel,
        points=2,
        cases=_kernel_cases,
        rtol=1e-7,
        atol=1e-10,
        description="K = (C B_bar, C A_bar B_bar, ..., C A_bar^(L-1) B_bar)",
        mutants=[
            Mutant(
                "off by one power",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L, 1),
                "the kernel starts at A_bar^0 = I: K_0 = C B_bar (the current input), K_k = C "
                "A_bar^k B_bar for k = 0 .. L-1.",
            ),
            Mutant(
                "elementwise power of a dense matrix",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L, power="elementwise"),
                "for a dense A_bar, A_bar^k is a MATRIX power (np.linalg.matrix_power, or multiply "
                "the vector by A_bar once per step), not A_bar ** k entry by entry.",
            ),
            Mutant(
                "kernel reversed",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L, reverse=True),
                "the kernel is reversed: K[0] = C B_bar is the weight of the CURRENT input, K[L-1] "
                "the oldest.",
            ),
            Mutant(
                "forgot C",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L, use_c=False),
                "each entry is the scalar C . (A_bar^k B_bar): read the state out with C.",
            ),
            Mutant(
                "one entry too many",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L + 1),
                "the kernel has exactly L entries, powers 0 .. L-1.",
            ),
        ],
    )
)

# ================================================================ selective_scan


def _scan_inputs(rng, batch, d_inner, d_state, L, delta_scale=1.0):
    u = rng.normal(size=(batch, d_inner, L))
    delta = delta_scale * np.log1p(np.exp(rng.normal(size=(batch, d_inner, L))))  # softplus > 0
    A = -np.exp(rng.normal(size=(d_inner, d_state)))
    B = rng.normal(size=(batch, d_state, L))
    C = rng.normal(size=(batch, d_state, L))
    D = rng.normal(size=(d_inner,))
    return u, delta, A, B, C, D


def _scan_cases():
    rng = np.random.default_rng(13)
    small = _scan_inputs(rng, 1, 2, 3, 5)
    batch = _scan_inputs(rng, 2, 3, 4, 7)
    single = _scan_inputs(rng, 2, 2, 2, 1)
    big = _scan_inputs(rng, 1, 3, 4, 9, delta_scale=5.0)
    f32 = tuple(a.astype(np.float32) for a in _scan_inputs(rng, 2, 3, 4, 6))
    return [
        Case("batch 1, d_inner 2, d_state 3, L 5, with D", small),
        Case("the same without D (D=None)", small[:5]),
        Case("batch 2, d_inner 3, d_state 4, L 7, with D", batch),
        Case("a single time step L = 1", single, hidden=True),
        Case("large steps (delta up to ~20)", big, hidden=True),
        Case("batch 2, L 7, D=None", batch[:5], hidden=True),
        Case("float32 inputs", f32, hidden=True, rtol=1e-4, atol=1e-5),
    ]


def _scan_generic(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    b_rule="euler",
    order="update-then-read",
    use_delta_in_a=True,
    reverse=False,
    use_d=True,
    swap_bc=False,
):
    u, delta, A, B, C = (np.asarray(x, float) for x in (u, delta, A, B, C))
    if swap_bc:
        B, C = C, B
    batch, d_inner, L = u.shape
    h = np.zeros((batch, d_inner, A.shape[1]))
    y = np.zeros((batch, d_inner, L))
    times = range(L - 1, -1, -1) if reverse else range(L)
    for t in times:
        dt = delta[:, :, t, None]
        dA = dt * A if use_delta_in_a else A
        A_bar = np.exp(dA)
        if b_rule == "euler":
            B_bar = dt * B[:, None, :, t]
        else:  # zoh
            B_bar = np.expm1(dt * A) / A * B[:, None, :, t]
        readout = np.einsum("bdn,bn->bd", h, C[:, :, t])
        h = A_bar * h + B_bar * u[:, :, t, None]
        if order == "update-then-read":
            readout = np.einsum("bdn,bn->bd", h, C[:, :, t])
        y[:, :, t] = readout
    if D is not None and use_d:
        y = y + np.asarray(D, float)[:, None] * u
    return y


register(
    Exercise(
        name="selective_scan",
        zone="03_efficiency",
        reference=attnlab.selective_scan,
        points=3,
        cases=_scan_cases,
        rtol=1e-6,
        atol=1e-9,
        description="Mamba's selective scan (mamba_ssm reference shapes)",
        mutants=[
            Mutant(
                "no D skip",
                lambda u, delta, A, B, C, D=None: _scan_generic(u, delta, A, B, C, D, use_d=False),
                "the skip connection is missing: when D is given, add D[d] * u[:, d, t] to every "
                "output (y = y + D[:, None] * u).",
            ),
            Mutant(
                "ZOH for B",
                lambda u, delta, A, B, C, D=None: _scan_generic(u, delta, A, B, C, D, b_rule="zoh"),
                "Mamba discretises B with the simpler Euler rule: B_bar = delta_t * B_t (only A "
                "gets the exponential, A_bar = exp(delta_t A)), as in mamba_ssm's reference.",
            ),
            Mutant(
                "read before update",
                lambda u, delta, A, B, C, D=None: _scan_generic(
                    u, delta, A, B, C, D, order="read-then-update"
                ),
                "wrong time ordering: update the state first, h_t = A_bar h_{t-1} + B_bar u_t, THEN "
                "read y_t = C_t . h_t (the current input must reach the current output).",
            ),
            Mutant(
                "time reversed",
                lambda u, delta, A, B, C, D=None: _scan_generic(u, delta, A, B, C, D, reverse=True),
                "the scan runs backwards: go forward in time, t = 0, 1, ..., L-1 (the model is causal).",
            ),
            Mutant(
                "exp(A) without delta",
                lambda u, delta, A, B, C, D=None: _scan_generic(
                    u, delta, A, B, C, D, use_delta_in_a=False
                ),
                "A_bar = exp(delta_t * A): the step delta_t multiplies A inside the exponential.",
            ),
            Mutant(
                "B and C swapped",
                lambda u, delta, A, B, C, D=None: _scan_generic(u, delta, A, B, C, D, swap_bc=True),
                "B writes the input into the state (h += delta B u) and C reads it out (y = C . h); "
                "you swapped them.",
            ),
        ],
    )
)
