"""The architecture the package promises: the remote-code files stand apart, the rule-based negatives are light, the
cross-process gather is the caller's choice, and every command follows one command-line convention."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[1]
REMOTE_CODE = ("configuration_tripletclip.py", "modeling_tripletclip.py", "losses.py")


# ------------------------------------------------------------------------------------------------ remote code


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(absolute top-level modules, relative modules) a file imports."""
    absolute, relative = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            absolute |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            (relative if node.level else absolute).add(node.module.split(".")[0] if node.module else "")
    return absolute, relative


@pytest.mark.parametrize("name", REMOTE_CODE)
def test_remote_code_files_import_only_torch_transformers_and_each_other(name):
    absolute, relative = _imports(REPO / "modeling_tripletclip" / name)
    third_party = {module for module in absolute if module not in sys.stdlib_module_names and module != "__future__"}
    assert third_party <= {"torch", "transformers"}, third_party
    assert relative <= {Path(n).stem for n in REMOTE_CODE}, relative
    # No file-system or Hub I/O: nothing that opens, lists or downloads.
    source = (REPO / "modeling_tripletclip" / name).read_text()
    tree = ast.parse(source)
    calls = {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
             for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))}
    assert not calls & {"open", "listdir", "scandir", "read_text", "read_bytes", "write_text", "isfile", "isdir",
                        "exists", "hf_hub_download", "snapshot_download", "glob", "load", "dump"}, calls
    assert not {"json", "pathlib", "shutil", "huggingface_hub", "requests", "glob"} & absolute


def test_modeling_file_leaves_loading_policy_to_the_package():
    from modeling_tripletclip import TripletCLIPModel

    assert "from_pretrained" not in TripletCLIPModel.__dict__  # transformers' own, unchanged
    _, relative = _imports(REPO / "modeling_tripletclip" / "modeling_tripletclip.py")
    assert relative == {"configuration_tripletclip", "losses"}


# ------------------------------------------------------------------------------------------------ one-way house

#: What the import graph covers: every module of ours outside the tests.
HOUSE = ("modeling_tripletclip", "dataset_builders", "benchmarks", "spaces")


def _module_names() -> dict[str, Path]:
    files = [p for top in HOUSE for p in (REPO / top).rglob("*.py")] + [REPO / "train_accelerate.py"]
    names = {}
    for path in files:
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, at the top or inside functions (``from pkg import submodule`` is
    an arrow to the submodule, not to the package)."""
    modules = _module_names()
    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                targets |= {f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names}
        resolved = set()
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                resolved.add(target)
        graph[name] = resolved
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each is an import circle."""
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def visit(module):
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_the_data_package_never_imports_the_model_package():
    upward = sorted((a, b) for a, targets in import_graph().items() for b in targets
                    if a.startswith("dataset_builders") and b.startswith("modeling_tripletclip"))
    assert not upward, upward


def test_the_remote_code_trio_imports_nothing_of_ours_but_each_other():
    graph = import_graph()
    trio = {f"modeling_tripletclip.{Path(name).stem}" for name in REMOTE_CODE}
    for module in trio:
        assert graph[module] <= trio, (module, graph[module] - trio)


def test_there_is_no_import_circle():
    assert import_circles(import_graph()) == []


def test_the_circle_finder_finds_circles():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []


def test_every_name_in_every_all_is_importable():
    import importlib
    import pkgutil

    broken = []
    for package in ("modeling_tripletclip", "dataset_builders"):
        root = importlib.import_module(package)
        for name in [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]:
            module = importlib.import_module(name)
            for exported in getattr(module, "__all__", ()):
                try:
                    getattr(module, exported)
                except AttributeError as error:
                    broken.append(f"{name}.{exported}: {error}")
    assert not broken, broken


# ------------------------------------------------------------------------------------------------ light imports


def test_rule_based_negatives_import_only_the_standard_library():
    code = ("import sys; import dataset_builders.synthesis.rules as r; "
            "heavy = [m for m in ('datasets', 'numpy', 'pyarrow', 'torch', 'PIL', 'transformers') if m in sys.modules]; "
            "assert not heavy, heavy; print(len(r.NEGATIVE_KINDS))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7"
    absolute, relative = _imports(REPO / "dataset_builders" / "synthesis" / "rules.py")
    assert all(m in sys.stdlib_module_names or m == "__future__" for m in absolute) and not relative


# ------------------------------------------------------------------------------------------------ gathering


def _rank_zero_alone(rank: int, init_file: str, out: str, checkpoint: str) -> None:
    torch.set_num_threads(1)  # as the test process (conftest), so the two losses are computed alike
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    try:
        if rank == 0:
            from modeling_tripletclip.loading import load_tripletclip

            torch.manual_seed(0)
            model = load_tripletclip(checkpoint).eval()
            inputs = torch.load(os.path.join(out, "inputs.pt"), weights_only=True)
            with torch.no_grad():
                loss = model(**inputs, return_loss=True).loss  # no gather: rank 1 does nothing meanwhile
            torch.save(loss, os.path.join(out, "loss.pt"))
        dist.barrier()  # rank 1 waits here the whole time: a hidden all-gather on rank 0 would never complete
    finally:
        dist.destroy_process_group()


def test_a_plain_forward_in_a_live_process_group_computes_the_local_loss(tiny_checkpoint, tmp_path):
    from modeling_tripletclip.loading import load_tripletclip
    from test_model import NEGATIVES, TEXTS, batch
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    inputs = dict(batch(processor, TEXTS, NEGATIVES))
    torch.save(inputs, tmp_path / "inputs.pt")
    mp.spawn(_rank_zero_alone, args=(str(tmp_path / "init"), str(tmp_path), str(tiny_checkpoint)), nprocs=2, join=True)
    with torch.no_grad():
        expected = load_tripletclip(tiny_checkpoint).eval()(**inputs, return_loss=True).loss
    torch.testing.assert_close(torch.load(tmp_path / "loss.pt", weights_only=True), expected, rtol=1e-6, atol=0)


# ------------------------------------------------------------------------------------------------ command lines


def _commands():
    from modeling_tripletclip.cli import commands

    return commands()


def test_every_command_takes_output_dir_and_underscore_flags():
    for name, command in _commands().items():
        fields = {f.name for f in dataclasses.fields(command.options)}
        assert "output_dir" in fields, name
        assert all("-" not in f for f in fields), name


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_reads_yaml_and_flags_win(name, tmp_path, capsys):
    from dataset_builders.utils.options import parse_options

    command = _commands()[name]
    (tmp_path / "settings.yaml").write_text(f"output_dir: {tmp_path / 'from-yaml'}\n")
    required = {f.name: "x" for f in dataclasses.fields(command.options) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name != "output_dir"}
    flags = [token for key, value in required.items() for token in (f"--{key}", value)]
    # Only parsing: the dataclass's own checks (validate) need real inputs and are tested with each command.
    original = getattr(command.options, "validate", None)
    try:
        if original is not None:
            command.options.validate = lambda self: None
        parsed = parse_options(command.options, ["--config", str(tmp_path / "settings.yaml"), *flags], prog=name)
        assert parsed.output_dir == str(tmp_path / "from-yaml")
        parsed = parse_options(command.options, ["--config", str(tmp_path / "settings.yaml"), *flags,
                                                 "--output_dir", "flag-wins"], prog=name)
        assert parsed.output_dir == "flag-wins"
    finally:
        if original is not None:
            command.options.validate = original
    from modeling_tripletclip.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*name.split(), "--help"])
    help_text = capsys.readouterr().out
    assert exit_info.value.code == 0 and "--output_dir" in help_text and "--config FILE.yaml" in help_text


def test_a_first_release_knows_only_its_own_flags(tmp_path, capsys):
    from dataset_builders.cli import WorldOptions
    from dataset_builders.utils.options import parse_options

    parsed = parse_options(WorldOptions, ["--output_dir", str(tmp_path), "--num-train", "12", "--overwrite_output_dir"],
                           prog="tripletclip data world")
    assert (parsed.output_dir, parsed.num_train, parsed.overwrite_output_dir) == (str(tmp_path), 12, True)
    for argv in (["--out", str(tmp_path)], [str(tmp_path)], ["--output_dir", str(tmp_path), "--overwrite"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_options(WorldOptions, argv, prog="tripletclip data world")
        assert exit_info.value.code == 2


def test_unknown_yaml_settings_and_abbreviations_are_refused(tmp_path, capsys):
    from dataset_builders.cli import WorldOptions
    from dataset_builders.utils.options import parse_options

    (tmp_path / "bad.yaml").write_text("output_dir: x\nnum_trian: 3\n")
    with pytest.raises(ValueError, match="unknown settings num_trian"):
        parse_options(WorldOptions, ["--config", str(tmp_path / "bad.yaml")], prog="tripletclip data world")
    with pytest.raises(SystemExit):
        parse_options(WorldOptions, ["--output_dir", "x", "--num_tra", "3"], prog="tripletclip data world")
    assert "unrecognized arguments" in capsys.readouterr().err
