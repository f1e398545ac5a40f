import pytest

from bridge import pins


def test_pin_and_unpin(tmp_path):
    directory = tmp_path / "pins"

    assert pins.pin(directory, "demo-pr3") is True
    assert pins.pin(directory, "demo-pr3") is False
    assert pins.pinned(directory) == {"demo-pr3"}
    assert (directory / "demo-pr3").stat().st_mode & 0o777 == 0o644
    assert pins.unpin(directory, "demo-pr3") is True
    assert pins.unpin(directory, "demo-pr3") is False
    assert pins.pinned(directory) == frozenset()


def test_missing_directory_has_no_pins(tmp_path):
    assert pins.pinned(tmp_path / "missing") == frozenset()


def test_other_files_are_not_pins(tmp_path):
    (tmp_path / ".demo-pr1.tmp").touch()
    (tmp_path / "README").touch()
    pins.pin(tmp_path, "demo-pr2")

    assert pins.pinned(tmp_path) == {"demo-pr2"}


@pytest.mark.parametrize("preview_id", ["demo-pr0", "../demo-pr1", "demo-pr1/x", "Demo-pr1", ""])
def test_invalid_preview_id_is_rejected(tmp_path, preview_id):
    with pytest.raises(ValueError, match="invalid preview id"):
        pins.pin(tmp_path, preview_id)


def test_unreadable_pins_raise_unless_listing(tmp_path):
    # A file where the directory should be fails like an unreadable directory, even as root.
    (tmp_path / "pins").write_text("")

    with pytest.raises(NotADirectoryError):
        pins.pinned(tmp_path / "pins")
    assert pins.pinned(tmp_path / "pins", strict=False) == frozenset()
