"""`bench.perfprofile`: perf's rows summed by library, start-up taken out, per GB."""

from __future__ import annotations

import pytest

from bench.perfprofile import PYTHON_C_WORK, Profiled, costs, side_by_side

REPORT = """
    40.00%  libpython3.11.so.1.0                          [.] _PyEval_EvalFrameDefault
    20.00%  _core.cpython-311-x86_64-linux-gnu.so         [.] json_skip_string
    15.00%  libpython3.11.so.1.0                          [.] bytes_splitlines
    10.00%  igzip_lib.cpython-311-x86_64-linux-gnu.so     [.] isal_deflate_icf_body
     5.00%  [kernel.kallsyms]                             [k] clear_page_erms
     5.00%  libpython3.11.so.1.0                          [.] _PyObject_Malloc
     5.00%  libwhatever.so                                [.] something
# a comment perf writes
"""


def test_each_row_is_counted_once_under_its_library_in_cpu_seconds() -> None:
    found = costs(REPORT.splitlines(), cpu=2.0)

    assert found == pytest.approx(
        {
            "Python: running code (eval, calls, lookups)": 0.8,
            "msgspec (validation)": 0.4,
            PYTHON_C_WORK: 0.3,
            "isal (gzip)": 0.2,
            "kernel (syscalls, page faults)": 0.1,
            "Python: allocation and GC": 0.1,
            "other": 0.1,
        }
    )
    assert sum(found.values()) == pytest.approx(2.0)


def test_what_start_up_spent_is_not_charged_to_the_gigabytes() -> None:
    agent = Profiled("agent", {"msgspec": 1.5, "isal": 1.0}, {"msgspec": 0.5}, gigabytes=0.5)

    assert agent.per_gb("msgspec") == pytest.approx(2.0)
    assert agent.per_gb("isal") == pytest.approx(2.0)
    assert agent.per_gb("absent") == 0.0


def test_the_table_sets_tools_side_by_side_largest_first() -> None:
    agent = Profiled("agent", {"msgspec": 2.0, "isal": 1.0}, {}, gigabytes=1.0)
    loop = Profiled("plain-loop", {"isal": 1.5}, {}, gigabytes=1.0)

    lines = side_by_side("json", [agent, loop]).splitlines()

    assert lines[2].split() == ["msgspec", "2.00", "0.00"]
    assert lines[3].split() == ["isal", "1.00", "1.50"]
    assert lines[-1].split() == ["all", "3.00", "1.50"]
