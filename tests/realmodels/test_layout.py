"""The layering inside ``realmodels`` (the tree-wide rules, cycles and fresh imports are in tests/test_layering.py):
``loading`` <- ``data`` <- ``analysis``. ``loading`` and ``data`` never import ``analysis``; ``loading`` does not
import ``data`` except in ``loading.session``, which memoises a dataset's activations for the analysis stages."""

from __future__ import annotations

from tests.test_layering import _imports, _modules

SESSION = "realmodels.loading.session"


def _imported(prefix: str) -> dict[str, set[str]]:
    return {name: _imports(name, path, top_level_only=False) for name, path in _modules().items()
            if name.startswith(prefix)}


def _inside(targets: set[str], package: str) -> set[str]:
    return {t for t in targets if t == package or t.startswith(package + ".")}


def test_loading_and_data_do_not_import_analysis():
    for name, targets in {**_imported("realmodels.loading"), **_imported("realmodels.data")}.items():
        assert not _inside(targets, "realmodels.analysis"), name


def test_only_the_session_of_loading_reaches_into_data():
    imported = _imported("realmodels.loading")
    assert _inside(imported[SESSION], "realmodels.data")  # the rule below would be vacuous otherwise
    for name, targets in imported.items():
        if name != SESSION:
            assert not _inside(targets, "realmodels.data"), name
