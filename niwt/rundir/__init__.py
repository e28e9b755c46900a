"""Run directories: their layout (every file's name, once), the manifest with a checksum of every
file, private staging and an atomic move into place, finished stages kept for ``--resume``, and
the record a later command reads a run's model back with.

* :mod:`~niwt.rundir.layout`: the name of every file of a run directory;
* :mod:`~niwt.rundir.files`: checksums, JSON through a temporary name, listings;
* :mod:`~niwt.rundir.manifest`: the manifest, and checking a run's files against it;
* :mod:`~niwt.rundir.staging`: writing a run (staging, atomic move, the rule that niwt never
  deletes what it did not write);
* :mod:`~niwt.rundir.stages`: finished stages and their keys, test scores;
* :mod:`~niwt.rundir.info`: :class:`RunInfo`, what ``model/run.json`` holds;
* :mod:`~niwt.rundir.about`: what commands write about a run (reports, explanations), never part of it;
* :mod:`~niwt.rundir.lock`: one writer at a time on a finished run.
"""

from niwt.rundir.about import check_writable, outputs_of, owned_outputs, record_outputs
from niwt.rundir.files import file_checksum, write_json
from niwt.rundir.info import RunInfo
from niwt.rundir.lock import run_lock
from niwt.rundir.manifest import FORMAT, FORMAT_VERSION, Manifest, read_manifest, verify_run
from niwt.rundir.stages import StageStore, load_test_scores, save_test_scores, stage_key
from niwt.rundir.staging import check_file_folder, check_output_dir, in_run_dir, run_dir, write_files

__all__ = ["FORMAT", "FORMAT_VERSION", "Manifest", "read_manifest", "verify_run", "check_output_dir",
           "run_dir", "in_run_dir", "check_file_folder", "write_files", "write_json", "file_checksum", "StageStore",
           "stage_key", "save_test_scores", "load_test_scores", "RunInfo", "outputs_of", "owned_outputs",
           "record_outputs", "check_writable", "run_lock"]
