"""The app is built without a Litestar deprecation warning: nothing it declares stops working in Litestar 3.0
(bodies marked `JSONBody[...]`, parameters `FromQuery`/`FromPath`/`HeaderParameter`), and nothing creeps
back unnoticed among the warnings a test run prints."""

from __future__ import annotations

import warnings
from pathlib import Path

from litestar.exceptions import LitestarDeprecationWarning

from server.app import create_app
from server.settings import load_settings


def test_the_app_and_its_openapi_document_are_built_without_deprecated_declarations(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Handlers' signatures are read when the app is built; the document reads them once more.
        app = create_app(load_settings({"LANSHOU_DATA_DIR": str(tmp_path)}))
        app.openapi_schema.to_schema()
    # LitestarDeprecationWarning (what 3.0 removes) is one; `Parameter(header=...)` warns a plain one.
    assert issubclass(LitestarDeprecationWarning, DeprecationWarning)
    deprecated = sorted({str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)})
    assert deprecated == [], "\n".join(deprecated)
