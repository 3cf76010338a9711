"""Every explorer of the course, live: in a real ipykernel, driven by nbclient's widget frontend.

nbclient mimics JupyterLab's Output widget: output produced while an Output widget captures
(a redraw of an explorer) goes into that widget's state, which we read back after each
change. For every explorer the notebooks call, this builds it as the course does (stand-in
data where a notebook uses a trained model), sets every control to several values (min,
max, middle, every option, and back to the start; then all of them again in one cell, as
fast as the kernel takes them) and checks: no error output, exactly one figure (redrawn, not
stacked), the figure changes with every change of a control and comes back with the start
value, its size in pixels never changes, and the controls shown are exactly the documented
ones, each explained (in bold, as labelled) in the notebook text above the explorer.

The last test (slow) executes every solution notebook top to bottom with live widgets.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.output_widget import OutputWidget

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted(p for p in (ROOT / "solutions").glob("*/*.py") if p.stem == p.parent.name)
CALL = re.compile(r"^\s*attnlab\.(\w+_explorer)\(", re.MULTILINE)

# explorer -> (the call, as a notebook makes it; the descriptions of its controls, in order)
EXPLORERS = {
    "fossil_explorer": ("attnlab.fossil_explorer(n=512, d=512)", ["n tokens", "d width"]),
    "scaling_explorer": ("attnlab.scaling_explorer(d_k=256, scaled=False)", ["d_k", "scores"]),
    "attention_explorer": (
        "attnlab.attention_explorer(weights, tokens, layer=1, head='all', query='it', title='stand-in')",
        ["layer", "head", "query"],
    ),
    "positional_encoding_explorer": (
        "attnlab.positional_encoding_explorer()",
        ["d_model", "RoPE base", "max k", "ALiBi heads"],
    ),
    "mask_explorer": (
        "attnlab.mask_explorer(n=32, pattern='bigbird', causal=False)",
        ["pattern", "n", "causal", "window", "stride", "n_global", "n_random", "seed"],
    ),
    "flash_tile_explorer": (
        "attnlab.flash_tile_explorer(n=256, block_size=32, causal=True)",
        ["N", "block size", "causal"],
    ),
    "lecture_map_explorer": ("attnlab.lecture_map_explorer(thread='all')", ["thread"]),
}

# Kernel-side set-up: stand-ins for the data of the notebooks that train or download a model,
# and `describe`, which finds a displayed explorer and lists the values to try on its controls.
SETUP = r'''
import json
import numpy as np
import ipywidgets
import attnlab

assert attnlab.widgets_available(), "the test kernel must be live"
rng = np.random.default_rng(0)
tokens = ["[CLS]", "the", "animal", "was", "too", "tired", "it", "[SEP]"]
weights = rng.dirichlet(np.ones(len(tokens)), size=(3, 4, len(tokens)))  # (layers, heads, N, N)
text = "def f(x):\n    return x + 1\n"
maps = np.tril(rng.random((2, 2, len(text), len(text))))
maps /= maps.sum(axis=-1, keepdims=True)  # causal attention maps (layers, heads, N, N)


def trial_values(control):
    """(attribute, values): every option of a menu or toggle, or a slider's min, max and middle."""
    if isinstance(control, ipywidgets.SelectionSlider):
        last = len(control.options) - 1
        return "index", [0, last, last // 2]
    if hasattr(control, "options"):
        return "index", list(range(len(control.options)))
    if isinstance(control.value, bool):
        return "value", [not control.value, control.value]
    if isinstance(control, ipywidgets.FloatLogSlider):
        exponents = (control.min, control.max, (control.min + control.max) / 2)
        return "value", [control.base ** e for e in exponents]
    steps = (control.max - control.min) // control.step
    middle = control.min + (steps // 2) * control.step
    return "value", [control.min, control.max, middle]


def describe(model_id):
    box = ipywidgets.widgets.widget._instances[model_id]
    *controls, output = box.children
    assert isinstance(output, ipywidgets.Output), type(output)
    rows = []
    for control in controls:
        attribute, values = trial_values(control)
        rows.append({"description": control.description, "attribute": attribute,
                     "start": getattr(control, attribute), "values": values})
    print(json.dumps({"output": output.model_id, "controls": rows}))
'''


class LiveKernel:
    """One ipykernel with nbclient as its widget frontend; `run` executes a cell in it."""

    def __init__(self, client: NotebookClient):
        self.client = client

    def run(self, code: str) -> list:
        """Execute `code` as a new cell; returns its outputs, failing on an error output."""
        cell = nbformat.v4.new_code_cell(code)
        self.client.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.client.nb.cells) - 1)
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, "\n".join("\n".join(o.traceback) for o in errors)
        return cell.outputs

    def output_widget(self, model_id: str) -> list:
        """The outputs that the frontend shows in Output widget `model_id` right now."""
        return list(self.client.widget_state[model_id].get("outputs", []))


def no_sync_back(patch: pytest.MonkeyPatch) -> None:
    """Keep nbclient's Output widgets from sending their outputs back to the kernel.

    nbclient sends that update on the shell channel while it waits there for the cell's
    reply, and then sometimes waits until the cell times out (jupyter/nbclient#312). The
    tests read the outputs from nbclient's side (client.widget_state), so nothing is lost.
    """
    patch.setattr(OutputWidget, "sync_state", lambda self: None)


@pytest.fixture(scope="module")
def kernel():
    """A kernel started live: no ATTNLAB_STATIC, no grading, matplotlib's inline backend."""
    nb = nbformat.v4.new_notebook()
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        allow_errors=True,
        resources={"metadata": {"path": str(ROOT)}},
    )
    with contextlib.ExitStack() as stack:
        no_sync_back(stack.enter_context(pytest.MonkeyPatch.context()))
        with pytest.MonkeyPatch.context() as env:  # only the kernel's environment
            for name in ("ATTNLAB_STATIC", "NBGRADER_EXECUTION", "ATTNLAB_GRADING", "MPLBACKEND"):
                env.delenv(name, raising=False)
            stack.enter_context(client.setup_kernel())
        live = LiveKernel(client)
        live.run(SETUP)
        yield live


def png_size(png_base64: str) -> tuple[int, int]:
    """(width, height) in pixels, read from the PNG header."""
    import base64

    header = base64.b64decode(png_base64[:64])
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def only_figure(outputs: list, context: str) -> str:
    """The one PNG among an Output widget's outputs, after checking that nothing went wrong."""
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert not errors, f"{context}: " + "\n".join("\n".join(o["traceback"]) for o in errors)
    stderr = "".join(
        o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"
    )
    assert "Error" not in stderr and "Traceback" not in stderr, f"{context}: {stderr}"
    pngs = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1, f"{context}: {len(pngs)} figures in the output (expected one, redrawn)"
    return pngs[0]


def test_the_table_lists_every_explorer_of_the_notebooks():
    called = {name for path in SOLUTIONS for name in CALL.findall(path.read_text(encoding="utf-8"))}
    assert called == set(EXPLORERS)


def markdown_before(source: str, call: str) -> str:
    """The markdown cell nearest above the code cell that contains `call`."""
    cells = re.split(r"^# %%", source, flags=re.MULTILINE)
    index = next(
        i
        for i, cell in enumerate(cells)
        if re.search(rf"^\s*attnlab\.{call}\(", cell, re.MULTILINE)
    )
    return next(c for c in reversed(cells[:index]) if "[markdown]" in c.split("\n", 1)[0])


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_every_control_is_explained_next_to_its_explorer(name):
    """The markdown above the explorer names each control in bold, as its label reads."""
    _, descriptions = EXPLORERS[name]
    for path in SOLUTIONS:
        source = path.read_text(encoding="utf-8")
        if re.search(rf"^\s*attnlab\.{name}\(", source, re.MULTILINE):
            text = markdown_before(source, name)
            missing = [d for d in descriptions if f"**{d}**" not in text]
            assert not missing, f"{path.name}: the text above {name} does not explain {missing}"


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_explorer_redraws_live(kernel, name):
    """Exactly the documented controls; each change gives one new figure of the same size."""
    call, descriptions = EXPLORERS[name]
    outputs = kernel.run(call)
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1, f"{name} displayed {len(views)} widgets"
    assert not [o for o in outputs if "image/png" in o.get("data", {})], (
        "a figure outside the Output widget"
    )
    box = views[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    info = json.loads(kernel.run(f"describe({box!r})")[0]["text"])
    assert [c["description"] for c in info["controls"]] == descriptions

    def figure(context: str) -> str:
        return only_figure(kernel.output_widget(info["output"]), f"{name}, {context}")

    first = figure("first drawing")
    size = png_size(first)
    for i, control in enumerate(info["controls"]):
        label, attribute, start = control["description"], control["attribute"], control["start"]
        sequence = []  # the values to try, then back to the start, each different from the one before
        for value in [*control["values"], start]:
            if value != (sequence[-1] if sequence else start):
                sequence.append(value)
        previous = first
        for value in sequence:
            kernel.run(
                f"box = ipywidgets.widgets.widget._instances[{box!r}]\n"
                f"box.children[{i}].{attribute} = {value!r}"
            )
            context = f"{label} = {value!r}"
            png = figure(context)
            assert png_size(png) == size, f"{context}: the figure changed size"
            assert png != previous, f"{context}: the figure did not change"
            previous = png
        assert png == first, f"{label} back at {start!r}: not the first figure again"

    # Rapid interaction: every value of every control once more, all in one cell.
    changes = "\n".join(
        f"box.children[{i}].{c['attribute']} = {v!r}"
        for i, c in enumerate(info["controls"])
        for v in [*c["values"], c["start"]]
    )
    kernel.run(f"box = ipywidgets.widgets.widget._instances[{box!r}]\n{changes}")
    assert figure("after rapid changes") == first, (
        "back at the start values: not the first figure again"
    )


def solution_notebook(path: Path):
    """The instructor's notebook of one zone, as tools/build_course.py builds it."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from build_course import source_notebook
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return source_notebook(path)


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_notebook_runs_with_live_widgets(path, monkeypatch):
    """Each solution notebook, top to bottom, in a live kernel (as a student in JupyterLab):
    no error output, in the cells or in any explorer's Output widget."""
    for name in ("ATTNLAB_STATIC", "NBGRADER_EXECUTION", "ATTNLAB_GRADING", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)
    no_sync_back(monkeypatch)
    nb = solution_notebook(path)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=1200,
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        f"cell {i}: " + "\n".join(o.traceback)
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.output_type == "error"
    ]
    for state in client.widget_state.values():
        errors += [
            "Output widget: " + "\n".join(o["traceback"])
            for o in state.get("outputs", [])
            if o["output_type"] == "error"
        ]
    assert not errors, "\n\n".join(errors)
    views = [
        o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    explorers = [v for v in views if client.widget_state[v].get("_model_name") == "VBoxModel"]
    assert len(explorers) == len(CALL.findall(path.read_text(encoding="utf-8"))), (
        "one widget per explorer call"
    )
