"""The output-format registry: each registered format writes exactly the files it declares."""
import fnmatch
import importlib.util

import pytest
from report_fixtures import golden_table, run_record

from robustpath.errors import UsageError
from robustpath.output.report.formats import OutputFormat, get_format, list_formats, register_format
from robustpath.output.report.writer import write_report
from robustpath.spec.run_spec import OUTPUT_FORMATS


def test_every_format_choice_is_registered_in_order():
    assert [output_format.name for output_format in list_formats()] == list(OUTPUT_FORMATS)
    with pytest.raises(UsageError, match="csv"):
        get_format("cvs")


@pytest.mark.parametrize("output_format", list_formats(), ids=lambda f: f.name)
def test_a_format_writes_the_files_it_declares(output_format, tmp_path):
    if output_format.name == "parquet" and importlib.util.find_spec("pyarrow") is None:
        pytest.skip("parquet needs pyarrow")
    records = [run_record("alpha", "run-a"), run_record("beta", "run-b")]
    write_report(golden_table(), tmp_path, records=records, formats=(output_format.name,))
    written = sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if path.is_file())
    assert written
    for relative in written:
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in output_format.files), relative
    for pattern in output_format.files:
        assert any(fnmatch.fnmatch(relative, pattern) for relative in written), pattern


def test_the_registry_refuses_a_duplicate_and_a_format_without_files():
    with pytest.raises(ValueError, match="twice"):
        register_format(OutputFormat("csv", "again", ("x.csv",)))
    with pytest.raises(ValueError, match="no files"):
        register_format(OutputFormat("empty", "nothing", ()))
