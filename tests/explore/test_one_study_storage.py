"""A search or map folder notes which study it holds and where (``study.json``): another study, or
the same name in another storage, is refused (tests/explore/test_explore_distributed.py meets it
through the CLI). The note must not refuse the same storage spelled otherwise: noted with its
password masked, a map on PostgreSQL resumed with the password moved to PGPASSWORD or .pgpass (or
changed), as ``postgresql+psycopg://`` (the driver open_storage takes), with the host in capitals
or its default port written out, or a journal resumed by its real path instead of through a
symlink, was refused as "a study in another storage" (found by this session's review)."""

from __future__ import annotations

import pytest

from castrig.errors import BadInput
from castrig.explore.one_study import check_study_folder, note_study


def test_the_same_storage_spelled_otherwise_resumes_and_another_is_refused(tmp_path):
    folder = tmp_path / "map"
    folder.mkdir()
    note_study(folder, "map-claim1", "postgresql://castrig:old-pw@db.lab:5432/fleet")
    for same in ("postgresql://castrig@db.lab/fleet", "postgresql+psycopg://castrig:new-pw@DB.lab/fleet",
                 "postgres://castrig:old-pw@db.lab:5432/fleet"):
        check_study_folder(folder, "map-claim1", "map", same)  # (nothing raised: the folder's own study)
    with pytest.raises(BadInput, match="holds study 'map-claim1' in postgresql://castrig@db.lab/fleet"):
        check_study_folder(folder, "map-claim1", "map", "postgresql://castrig:old-pw@db.lab:5433/fleet")
    assert "old-pw" not in (folder / "study.json").read_text()

    real = tmp_path / "shared"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    other = tmp_path / "map2"
    other.mkdir()
    note_study(other, "map-claim1", f"journal:{tmp_path / 'link' / 'j.journal'}")
    check_study_folder(other, "map-claim1", "map", f"journal:{real / 'j.journal'}")
    with pytest.raises(BadInput, match="would overwrite"):
        check_study_folder(other, "map-claim1", "map", f"journal:{real / 'k.journal'}")
