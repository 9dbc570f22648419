"""What the core takes from a third-party dataset, and only that: its declared path option
(``--data NAME:/path``), its identity (the leak guard), and the options it keeps. The
dataset here is a newcomer's CSV table whose path option is not called ``root``."""

from __future__ import annotations

import os
import subprocess
import types
from pathlib import Path

import pytest
from cli_runs import ROOT, command, plugin_distribution, run_ok
from test_registry import plugin_registered

from affectkit.errors import AffectkitError, PluginError
from affectkit.factory import build_dataset
from affectkit.registry import registry
from affectkit.render.pipeline import dataset_identity, parse_dataset_spec
from affectkit.serve.hub import DEFAULT_MODEL

TABLE_PLUGIN = '''
import csv

from pydantic import Field

from affectkit import hookimpl
from affectkit.interfaces import Dataset, Options, ResolvedPath, Sample
from affectkit.data.mesh_formats import load_mesh, save_mesh


class TableDataset(Dataset):
    """Scans listed in a CSV file with path, label and subject columns (paths relative to it)."""

    path_option = "table"
    labels = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")

    class Options(Options):
        table: ResolvedPath = Field(description="the CSV file")
        subjects: list[str] | None = Field(None, description="keep only these subjects")

    def rows(self):
        with open(self.options.table, newline="") as file:
            return [r for r in csv.DictReader(file) if r["label"] in self.labels and self.options.subjects in (None, [r["subject"]])]

    def samples(self):
        return [Sample(row["path"], row["label"], row["subject"]) for row in self.rows()]

    def load(self, sample):
        return load_mesh(self.options.table.parent / sample.key)

    layout = "table"

    @classmethod
    def write_layout(cls, generated, name, out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "scans.csv", "w", newline="") as file:
            table = csv.writer(file)
            table.writerow(["path", "label", "subject"])
            for sample in generated.samples():
                save_mesh(generated.load(sample), out_dir / f"{sample.key}.obj")
                table.writerow([f"{sample.key}.obj", sample.label, sample.subject])
        return out_dir / "scans.csv"


class Forgetful(TableDataset):
    """Forgets to hand its options to the base class."""

    def __init__(self, options):
        pass


@hookimpl
def register_datasets(register):
    register("table", TableDataset)
    register("forgetful-table", Forgetful)
'''


@pytest.fixture
def table_plugin():
    plugin = types.ModuleType("table_plugin")
    exec(compile(TABLE_PLUGIN, "table_plugin.py", "exec", dont_inherit=True), plugin.__dict__)  # as its own module: no __future__ of ours
    with plugin_registered(plugin, "affectkit-table"):
        yield


def test_the_path_on_the_command_line_goes_to_the_declared_path_option_and_is_the_identity(table_plugin, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scans.csv").write_text("path,label,subject\n")
    ref = parse_dataset_spec("table:scans.csv")
    assert ref.options == {"table": "scans.csv"}
    identity = dataset_identity(ref, build_dataset(ref))
    assert identity == {"name": "table", "table": str(tmp_path / "scans.csv")}  # absolute, wherever it is read again
    # options that only choose among the people leave the identity alone; another file does not
    fewer = parse_dataset_spec("table:{table: scans.csv, subjects: [S001]}")
    assert dataset_identity(fewer, build_dataset(fewer)) == identity
    (tmp_path / "other.csv").write_text("path,label,subject\n")
    other = parse_dataset_spec("table:other.csv")
    assert dataset_identity(other, build_dataset(other)) != identity
    # a generator has no path option: the people are its seed's
    with pytest.raises(AffectkitError, match=r"dataset 'facekit' takes no path \(it declares no path option\)"):
        parse_dataset_spec("facekit:/data")
    generated = parse_dataset_spec("facekit:subjects=2,seed=3")
    assert dataset_identity(generated, build_dataset(generated)) == {"name": "facekit", "seed": 3}


def test_synth_writes_a_plugins_layout_and_the_plugin_reads_it_back(tmp_path):
    """``affectkit synth --layout table``: the layout a third-party dataset declares (and
    writes) is offered like the built-in ones; a layout no dataset owns is one line."""
    (tmp_path / "site").mkdir()
    site = plugin_distribution(tmp_path / "site", "affectkit-table", "table_plugin", TABLE_PLUGIN)
    env = {**os.environ, "PYTHONPATH": str(site), "AFFECTKIT_PLUGINS": "affectkit-table"}
    out = run_ok("synth", "--out", str(tmp_path / "data"), "--subjects", "2", "--intensities", "4", "--no-neutral", "--layout", "table", env=env)
    table = Path(out.strip().splitlines()[-1])
    assert table == tmp_path / "data" / "scans.csv"
    done = subprocess.run(command("eval", str(DEFAULT_MODEL), "--data", f"table:{table}"), capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0 and "samples 12 " in done.stdout + done.stderr, done.stdout + done.stderr
    refused = subprocess.run(command("synth", "--out", str(tmp_path / "x"), "--layout", "tabel"), capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode == 2 and "'tabel' is no dataset's layout; allowed: affectkit, bu3dfe, bu4dfe, table" in refused.stderr


def test_a_component_that_does_not_keep_its_options_is_refused_when_built(table_plugin, tmp_path):
    with pytest.raises(PluginError, match=r"affectkit-table dataset 'forgetful-table' did not keep its options: its __init__ must call super"):
        registry().create("dataset", "forgetful-table", {"table": str(tmp_path / "scans.csv")})


def test_eval_takes_the_plugins_path_relative_to_where_it_is_run(tmp_path):
    """``affectkit eval MODEL --data table:RELATIVE.csv`` from another folder, the plugin
    installed as its own distribution, the shipped model scoring."""
    (tmp_path / "site").mkdir()
    site = plugin_distribution(tmp_path / "site", "affectkit-table", "table_plugin", TABLE_PLUGIN)
    manifest = Path(run_ok("synth", "--out", str(tmp_path / "data"), "--subjects", "2", "--intensities", "4", "--no-neutral", "--seed", "7").strip().splitlines()[-1])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "AFFECTKIT_PLUGINS": "affectkit-table"}
    relative = f"table:../data/{manifest.name}"
    done = subprocess.run(command("eval", str(DEFAULT_MODEL), "--data", relative), cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "samples 12 " in done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr  # other people than the run's: no leak warning


def test_a_folder_dataset_is_its_folder_or_its_own_manifest(tmp_path):
    """Two manifests side by side may list different people: given by ``manifest``, each is
    its own identity; given by ``root``, the folder is (as checkpoints have recorded it)."""
    for name in ("a.csv", "b.csv", "manifest.csv"):
        (tmp_path / name).write_text("path,label,subject\n")
    identities = [
        dataset_identity(ref, build_dataset(ref))
        for ref in (parse_dataset_spec(f"folder:manifest={tmp_path / 'a.csv'}"), parse_dataset_spec(f"folder:manifest={tmp_path / 'b.csv'}"))
    ]
    assert identities[0] != identities[1] and identities[0] == {"name": "folder", "manifest": str(tmp_path / "a.csv")}
    by_root = parse_dataset_spec(f"folder:{tmp_path}")
    assert dataset_identity(by_root, build_dataset(by_root)) == {"name": "folder", "root": str(tmp_path)}


def test_a_plugin_mesh_readers_failure_and_its_meshes_name_their_file(tmp_path):
    """A reader that raises its own error gives one MeshError naming the file; the meshes it
    reads carry their file as source (later errors about the geometry name it too), without
    the reader having to set it."""
    import numpy as np

    from affectkit import hookimpl
    from affectkit.data.mesh import Mesh
    from affectkit.data.mesh_formats import load_mesh
    from affectkit.errors import MeshError

    def read_tri(path):
        values = [float(v) for v in path.read_text().split()]  # a ValueError on anything else
        return Mesh(np.asarray(values, dtype=np.float32).reshape(3, 3), np.array([[0, 1, 2]]))

    plugin = types.ModuleType("tri_plugin")
    plugin.register_mesh_formats = hookimpl(lambda register: register(".tri", read_tri))
    (tmp_path / "good.tri").write_text("0 0 0  1 0 0  0 1 0")
    (tmp_path / "bad.tri").write_text("0 0 zero")
    with plugin_registered(plugin, "affectkit-tri"):
        assert load_mesh(tmp_path / "good.tri").source == str(tmp_path / "good.tri")
        with pytest.raises(MeshError, match=r"bad\.tri: cannot be read as \.tri \(ValueError: could not convert"):
            load_mesh(tmp_path / "bad.tri")
