"""The documentation runs: every ```bash and ```python block of docs/*.md and README.md is executed here, and every
`pcseg ...` command line in them is parsed by the real argument parser, so a page that no longer matches the code
fails CI. The conventions for writing pages are in docs/CONTRIBUTING.md; in short:

* A page is a session. Its blocks run in order in one fresh folder that holds `configs/`, a copy of the
  repository's configs shrunk to seconds (TINY below: two generated scenes, 20 cm voxels, a small SpUNet, two
  steps), so `pcseg train configs/synthetic/supervised.yaml` on a page trains the real pipeline, only smaller.
  Files written by one block are there for the next.
* A bash block is split into commands (continuation lines joined, comments dropped, here documents kept whole);
  each runs from the page's folder and must exit with status 0. A plain `pcseg ...` command runs in this process
  through `pcseg.cli.main` (globs expanded like bash); anything else (pipes, redirections, variables, other
  programs) runs in `bash -c` with the virtual environment's bin first on PATH. Python blocks run with `exec`, one
  namespace per block. PNGs of in-process commands come from the numpy renderer (an Open3D child process costs
  about 3 s a picture; tests/vis and tests/test_doctor.py cover Open3D).
* `<!-- test: ... -->` lines right before a block steer it:
      no-run REASON        only parse the block (downloads, GPUs, installers, runs of hours); counted
      setup NAME PATH      create test files first (FIXTURES below: tiny raw releases, links to sample data)
      expect TEXT          the block's output (stdout + stderr) contains TEXT
      status N             the block's last command exits with N instead of 0
* Static checks over every block, run or not: each `pcseg` command line (also after `torchrun ... -m pcseg.cli`)
  parses with `pcseg.cli.build_parser()` under the rules of `pcseg.cli.main`, its KEY=VALUE overrides name real
  config keys, and every `configs/...yaml` it names exists (or is written by the page). Removing any option the
  pages use from the parser makes these checks fail (test_removing_a_documented_option_is_caught).
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PAGES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
DIRECTIVE = re.compile(r"^<!--\s*test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)(.*)$")
RUN_LANGS = ("bash", "python")
SHELL_OPERATORS = set("|&;<>()")

# Merged into every copied config (method keys only where method.name is slidr; active keys where the file has an
# active section): sizes that make each documented run take about a second on one core.
TINY = {
    "data": {"num_train_scenes": 2, "num_val_scenes": 1, "points_per_scene": 4000, "batch_size": 2, "voxel_size": 0.2,
             "num_workers": 0},
    "model": {"name": "spunet14", "base_channels": 8, "channels": [8, 16, 16, 16, 16, 16, 8, 8],
              "layers": [1, 1, 1, 1, 1, 1, 1, 1]},
    "train": {"steps": 2, "checkpoint_every": 2, "log_every": 1, "eval_every": 0, "progress": False},
    "eval": {"batch_size": 1},
}
TINY_SLIDR = {"pretext_steps": 2, "pretext_batch": 2, "pretext_crop": 8, "image_channels": [8, 8],
              "image_layers": [1, 1], "image_scale": 0.1}
TINY_ACTIVE = {"rounds": 1}


# ---------------------------------------------------------------------------------------------------- pages
@dataclasses.dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    directives: List[Tuple[str, str]]

    @property
    def where(self) -> str:
        page = self.page.relative_to(REPO) if REPO in self.page.parents else self.page
        return f"{page}:{self.line}"

    def values(self, key: str) -> List[str]:
        return [value for k, value in self.directives if k == key]

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGS and not self.values("no-run")


def extract_blocks(page: Path) -> List[Block]:
    """Fenced code blocks of a Markdown page with the `<!-- test: ... -->` directives right above each."""
    blocks, pending = [], []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = DIRECTIVE.match(line.strip())
        fence = FENCE.match(line.strip())
        if directive:
            key, _, value = directive.group(1).partition(" ")
            pending.append((key, value.strip().strip('"')))
        elif fence:
            ticks, lang = fence.group(1), fence.group(2)
            body, j = [], i + 1
            while j < len(lines) and lines[j].strip() != ticks:
                body.append(lines[j])
                j += 1
            if j == len(lines):
                raise AssertionError(f"{page}:{i + 1}: unclosed code fence")
            blocks.append(Block(page, i + 1, lang, "\n".join(body) + "\n", pending))
            pending, i = [], j
        elif line.strip():
            pending = []
        i += 1
    return blocks


def all_blocks() -> List[Block]:
    return [block for page in PAGES for block in extract_blocks(page)]


HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")


def shell_commands(code: str) -> List[str]:
    """Logical commands of a bash block: continuation lines joined, blank and comment-only lines dropped, a here
    document kept with its command (lines joined by newlines, up to its terminator)."""
    commands, current = [], ""
    lines = iter(code.splitlines())
    for raw in lines:
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        command = current + line
        heredoc = HEREDOC.search(command)
        if heredoc:
            body = []
            for raw_body in lines:
                body.append(raw_body)
                if raw_body.strip() == heredoc.group(2):
                    break
            else:
                raise AssertionError(f"here document {heredoc.group(2)!r} is not terminated: {command}")
            command = "\n".join([command] + body)
        commands.append(command)
        current = ""
    if current.strip():
        commands.append(current)
    return commands


def tokens(command: str) -> List[str]:
    """shlex words of a command, with shell operators (| && ; > < ( )) as words of their own."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _is_operator(word: str) -> bool:
    return bool(word) and set(word) <= SHELL_OPERATORS


def pcseg_argvs(command: str) -> List[List[str]]:
    """The argument lists given to `pcseg` in a shell command (pipelines and `torchrun -m pcseg.cli` included)."""
    words, argvs, segment = tokens(command.split("\n", 1)[0]), [], []  # a here document's body is data
    for word in words + [";"]:
        if not _is_operator(word):
            segment.append(word)
            continue
        while segment and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", segment[0]):
            segment = segment[1:]  # VAR=value prefixes
        if segment and segment[0] == "pcseg":
            argvs.append(segment[1:])
        elif "pcseg.cli" in segment and segment[max(segment.index("pcseg.cli") - 1, 0)] == "-m":
            argvs.append(segment[segment.index("pcseg.cli") + 1:])
        segment = []
    return argvs


# ------------------------------------------------------------------------------------------- static checks
def _valid_keys() -> Dict[str, set]:
    from pcseg.active.config import ActiveConfig
    from pcseg.engine.config import Config
    from pcseg.methods import METHODS

    keys = {f.name: {g.name for g in dataclasses.fields(f.default_factory())} for f in dataclasses.fields(Config)}
    keys["method"] = {f.name for method in METHODS.values() for f in dataclasses.fields(method.Config)}
    keys["active"] = {f.name for f in dataclasses.fields(ActiveConfig)}
    return keys


def check_argv(parser, argv: Sequence[str], valid_keys: Dict[str, set], created: Sequence[str] = ()) -> List[str]:
    """Problems of one `pcseg` argument list: what `pcseg.cli.main` would refuse before running anything, unknown
    config keys in its overrides, and config files that neither exist nor are `created` by the page."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args, extra = parser.parse_known_args(list(argv))
    except SystemExit as exc:
        if exc.code == 0:  # --help
            return []
        return [err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"]
    unknown = [e for e in extra if e.startswith("-") or "=" not in e]
    if unknown or (extra and not hasattr(args, "overrides")):
        return [f"unrecognized arguments: {' '.join(unknown or extra)}"]
    problems = []
    overrides = list(getattr(args, "overrides", None) or []) + list(extra)
    overrides += [item for item in getattr(args, "csv", None) or [] if "=" in item]  # labels import
    for item in overrides:
        key = item.partition("=")[0]
        section, _, name = key.partition(".")
        if section not in valid_keys or name not in valid_keys[section]:
            problems.append(f"unknown config key {key!r} in {item!r}")
    for word in argv:
        for path in re.findall(r"(?:^|=)(configs/[\w./-]+\.yaml)$", word):
            if not (REPO / path).is_file() and path not in created:
                problems.append(f"config file {path} does not exist")
    return problems


def doc_argvs() -> List[Tuple[Block, List[str]]]:
    return [(block, argv) for block in all_blocks() if block.lang == "bash"
            for command in shell_commands(block.code) for argv in pcseg_argvs(command)]


def check_pages(parser, argvs: Optional[List[Tuple[Block, List[str]]]] = None) -> List[str]:
    """Problems of every `pcseg` command line of the pages (or of `argvs`), one line each."""
    keys = _valid_keys()
    return [f"{block.where}: pcseg {' '.join(argv)}: {problem}"
            for block, argv in (doc_argvs() if argvs is None else argvs)
            for problem in check_argv(parser, argv, keys, created_configs(block.page))]


def created_configs(page: Path) -> List[str]:
    """Config files that a page writes itself (`cat > configs/NAME.yaml <<...`)."""
    return [path for block in extract_blocks(page) if block.lang == "bash"
            for path in re.findall(r">\s*(configs/[\w./-]+\.yaml)", block.code)]


# ------------------------------------------------------------------------------------------------- fixtures
def _indoor(seed: int, points: int):
    from pcseg.data import generate_indoor_scene

    return generate_indoor_scene(seed, points)


def write_scannet_raw(root: Path, points: int = 1500) -> None:
    """A ScanNet v2 release in the official layout: scans/<scene>/<scene>_vh_clean_2.ply (+ .labels.ply with nyu40
    ids), scans_test/<scene>/ without labels, and the scannetv2_{train,val,test}.txt split lists in root."""
    from plyfile import PlyData, PlyElement

    from pcseg.data.scannet import VALID_CLASS_IDS

    splits = {"train": ["scene0000_00", "scene0001_00"], "val": ["scene0002_00"], "test": ["scene0707_00"]}
    for split, ids in splits.items():
        (root / f"scannetv2_{split}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"scannetv2_{split}.txt").write_text("\n".join(ids) + "\n")
        for k, scene_id in enumerate(ids):
            scene = _indoor(100 + k + 10 * len(split), points)
            folder = root / ("scans_test" if split == "test" else "scans") / scene_id
            folder.mkdir(parents=True, exist_ok=True)
            fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                      ("alpha", "u1")]
            faces = np.zeros(1, dtype=[("vertex_indices", "i4", (3,))])
            faces["vertex_indices"] = [0, 1, 2]
            face = PlyElement.describe(faces, "face", len_types={"vertex_indices": "u1"},
                                       val_types={"vertex_indices": "i4"})
            for labels in ((False, True) if split != "test" else (False,)):
                vertex = np.zeros(len(scene.coord), dtype=fields + ([("label", "u2")] if labels else []))
                vertex["x"], vertex["y"], vertex["z"] = scene.coord.T
                rgb = np.round(scene.color * 255).astype(np.uint8)
                vertex["red"], vertex["green"], vertex["blue"], vertex["alpha"] = rgb[:, 0], rgb[:, 1], rgb[:, 2], 255
                if labels:
                    vertex["label"] = np.asarray(VALID_CLASS_IDS)[scene.label % len(VALID_CLASS_IDS)]
                name = f"{scene_id}_vh_clean_2{'.labels' if labels else ''}.ply"
                PlyData([PlyElement.describe(vertex, "vertex"), face], byte_order="<").write(str(folder / name))


def write_s3dis_raw(root: Path, points: int = 1500) -> None:
    """S3DIS in the raw layout: Area_N/<room>/Annotations/<class>_<k>.txt with lines "x y z r g b"."""
    from pcseg.data.s3dis import S3DIS_CLASSES

    for k, (area, room) in enumerate((("Area_1", "office_1"), ("Area_2", "hallway_1"), ("Area_5", "office_1"))):
        scene = _indoor(200 + k, points)
        folder = root / area / room / "Annotations"
        folder.mkdir(parents=True)
        rgb = np.round(scene.color * 255).astype(int)
        for c in np.unique(scene.label):
            name = S3DIS_CLASSES[int(c) % len(S3DIS_CLASSES)]
            rows = np.flatnonzero(scene.label == c)
            lines = [f"{x:.3f} {y:.3f} {z:.3f} {r} {g} {b}" for (x, y, z), (r, g, b)
                     in zip(scene.coord[rows], rgb[rows])]
            (folder / f"{name}_{int(c)}.txt").write_text("\n".join(lines) + "\n")


def write_semantickitti_raw(root: Path, points: int = 2000) -> None:
    """SemanticKITTI: sequences/00..21/velodyne/000000.bin (float32 x, y, z, remission) and, for 00-10,
    labels/000000.label (uint32 raw ids)."""
    from pcseg.data.semantickitti import LEARNING_MAP

    raw_ids = np.array(sorted(k for k, v in LEARNING_MAP.items() if v > 0), np.uint32)
    rng = np.random.default_rng(0)
    for seq in range(22):
        folder = root / "sequences" / f"{seq:02d}"
        (folder / "velodyne").mkdir(parents=True)
        xyz = rng.uniform([-20, -20, -2], [20, 20, 3], (points, 3))
        scan = np.concatenate([xyz, rng.random((points, 1))], 1).astype(np.float32)
        scan.tofile(folder / "velodyne" / "000000.bin")
        if seq <= 10:
            (folder / "labels").mkdir()
            raw_ids[rng.integers(0, len(raw_ids), points)].astype(np.uint32).tofile(folder / "labels" / "000000.label")


class SampleMissing(Exception):
    """The real sample data a block needs is absent: the block is skipped, the rest of its page still runs."""


def link_sample(name: str) -> Callable[[Path], None]:
    """Link a folder of the real sample data (../shared/data/NAME) to the given path (SampleMissing if absent)."""
    def setup(dst: Path) -> None:
        src = SHARED_DATA / name
        if not src.is_dir():
            raise SampleMissing(f"real sample data {src} not found (see shared/data/SOURCES.md)")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(src, target_is_directory=True)
    return setup


def preprocessed(name: str, write_raw: Callable[[Path], None]) -> Callable[[Path], None]:
    """Write a tiny raw release next to the page's files (under .fixtures/) and preprocess it into the given path,
    as `pcseg preprocess NAME RAW DST` would."""
    def setup(dst: Path) -> None:
        from pcseg.data.preprocess import preprocess

        raw = dst.parent / ".fixtures" / f"{dst.name}-raw"
        write_raw(raw)
        report = preprocess(name, raw, dst, workers=0, progress=False)
        assert not report.failures, report.summary()
    return setup


FIXTURES: Dict[str, Callable[[Path], None]] = {
    "scannet-raw": write_scannet_raw,
    "s3dis-raw": write_s3dis_raw,
    "semantickitti-raw": write_semantickitti_raw,
    "scannet": preprocessed("scannet", write_scannet_raw),
    "s3dis": preprocessed("s3dis", write_s3dis_raw),
    "semantickitti": preprocessed("semantickitti", write_semantickitti_raw),
    "kitti-object": link_sample("kitti/object"),
    "nuscenes": link_sample("nuscenes"),
}


def tiny_configs(dst: Path) -> None:
    """Copy configs/ to dst/configs with TINY merged into every file."""
    from pcseg.engine.config import read_yaml

    for path in sorted((REPO / "configs").rglob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        resolved = read_yaml(path)
        for section, values in TINY.items():
            data[section] = {**(data.get(section) or {}), **values}
        if (resolved.get("method") or {}).get("name") == "slidr":
            data["method"] = {**(data.get("method") or {}), **TINY_SLIDR}
        if "active" in resolved:
            data["active"] = {**(data.get("active") or {}), **TINY_ACTIVE}
        out = dst / "configs" / path.relative_to(REPO / "configs")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(data, sort_keys=False))


# ---------------------------------------------------------------------------------------------------- runner
class Session:
    """One page's folder and environment; runs its blocks in order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        tiny_configs(folder)
        self.env = dict(os.environ)
        self.env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")]),
                        PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [self.env.get("PYTHONPATH")] if p]),
                        PCSEG_CACHE=str(folder / ".cache"), OMP_NUM_THREADS="1")

    def run_block(self, block: Block) -> str:
        for setup in block.values("setup"):
            name, *args = setup.split()
            if name not in FIXTURES:
                raise AssertionError(f"{block.where}: unknown setup {name!r}; known: {', '.join(FIXTURES)}")
            if not (self.folder / args[0]).exists():  # an earlier block of the page made it
                FIXTURES[name](self.folder / args[0], *args[1:])
        want = int(block.values("status")[-1]) if block.values("status") else 0
        if block.lang == "python":
            output, code = self._python(block), 0
        else:
            commands = shell_commands(block.code)
            output = ""
            for k, command in enumerate(commands):
                code, out = self._shell(command)
                output += out
                expected = want if k == len(commands) - 1 else 0
                if code != expected:
                    raise AssertionError(f"{block.where}: `{command}` exited with {code} (expected {expected}):\n"
                                         f"{out[-3000:]}")
        for text in block.values("expect"):
            if text not in output:
                raise AssertionError(f"{block.where}: output lacks {text!r}:\n{output[-3000:]}")
        return output

    def _python(self, block: Block) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(block.code, block.where, "exec"), {"__name__": "__main__"})
        return out.getvalue()

    def _shell(self, command: str) -> Tuple[int, str]:
        words = tokens(command.split("\n", 1)[0])
        simple = (words and words[0] == "pcseg" and not any(map(_is_operator, words))
                  and not re.search(r"[$`\n]", command))
        if not simple:
            proc = subprocess.run(["bash", "-c", "set -eo pipefail\n" + command], cwd=self.folder, env=self.env,
                                  capture_output=True, text=True, timeout=300)
            return proc.returncode, proc.stdout + proc.stderr
        from pcseg.cli import main

        argv = []
        for word in words[1:]:
            matches = sorted(glob.glob(word)) if re.search(r"[*?[]", word) else []
            argv += matches or [word]
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return int(code or 0), out.getvalue()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_page_examples_run(page, tmp_path, monkeypatch, one_thread):
    blocks = [b for b in extract_blocks(page) if b.runs]
    if not blocks:
        pytest.skip(f"{page.name} has no runnable blocks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PCSEG_CACHE", str(tmp_path / ".cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # PNGs of in-process commands: the numpy renderer instead of an Open3D child process (about 3 s a picture;
    # tests/vis and tests/test_doctor.py render with Open3D). An explicit --backend is kept.
    import pcseg.vis.render as render

    real = render.render_images
    monkeypatch.setattr(render, "render_images", lambda job, backend="auto", timeout=300.0: real(
        job, "numpy" if backend == "auto" else backend, timeout))
    # pages that add a model, method or dataset register it at run time: the registries are restored afterwards
    from pcseg.data import DATASETS, DEFAULTS
    from pcseg.methods import METHODS
    from pcseg.models import MODELS

    saved = [(registry, dict(registry)) for registry in (DATASETS, DEFAULTS, METHODS, MODELS)]
    session = Session(tmp_path)
    try:
        for block in blocks:
            tic = time.perf_counter()
            try:
                session.run_block(block)
            except SampleMissing as missing:  # only blocks on the real sample frames; they stand alone
                print(f"{block.where}: skipped: {missing}")
                continue
            print(f"{block.where}: {time.perf_counter() - tic:.1f} s")
    finally:
        for registry, content in saved:
            registry.clear()
            registry.update(content)


def test_every_block_is_known_and_most_run():
    """Every fenced block is code that runs, code that is only parsed (with a reason), or not code (text, yaml);
    the counts are printed, and at least four in five code blocks of docs/ really run."""
    counts = {"run": 0, "parsed only": 0, "not code": 0}
    for block in all_blocks():
        if block.lang in RUN_LANGS:
            reasons = block.values("no-run")
            assert all(reasons), f"{block.where}: no-run needs a reason"
            counts["parsed only" if reasons else "run"] += 1
        else:
            assert block.lang in ("", "text", "yaml", "csv", "json", "console"), \
                f"{block.where}: unknown block language {block.lang!r} (use bash, python, text, yaml, csv, json)"
            assert not block.values("setup") and not block.values("expect"), f"{block.where}: directive on a " \
                                                                              f"block that does not run"
            counts["not code"] += 1
        for key, _ in block.directives:
            assert key in ("no-run", "setup", "expect", "status"), f"{block.where}: unknown directive {key!r}"
    print(f"doc blocks: {counts}")
    docs = [b for b in all_blocks() if b.lang in RUN_LANGS and b.page.parent.name == "docs"]
    assert docs and sum(b.runs for b in docs) >= 0.8 * len(docs), counts


def test_command_lines_parse():
    from pcseg.cli import build_parser

    argvs = doc_argvs()
    assert len(argvs) > 20  # the pages show the CLI
    assert check_pages(build_parser()) == []


def _subparser(parser, path: Sequence[str]):
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


def documented_options() -> List[Tuple[Tuple[str, ...], str]]:
    """(command path, option string) of every option that a pcseg command line in the pages uses."""
    from pcseg.cli import build_parser

    parser, used = build_parser(), set()
    for _, argv in doc_argvs():
        path = (argv[0], argv[1]) if argv[:1] == ["labels"] and len(argv) > 1 else tuple(argv[:1])
        sub = _subparser(parser, path)
        for word in argv[len(path):]:
            option = word.split("=", 1)[0]
            if option.startswith("-") and option in sub._option_string_actions and option not in ("-h", "--help"):
                used.add((path, option))
    return sorted(used)


def test_removing_a_documented_option_is_caught():
    """For every option the pages use: a parser without it makes the static checks fail on those pages."""
    from pcseg.cli import build_parser

    options = documented_options()
    assert len(options) > 15
    argvs = doc_argvs()
    for path, option in options:
        parser = build_parser()
        sub = _subparser(parser, path)
        action = sub._option_string_actions[option]
        sub._handle_conflict_resolve(None, [(o, action) for o in action.option_strings])  # argparse's own removal
        users = [(block, argv) for block, argv in argvs if tuple(argv[:len(path)]) == path
                 and any(word.split("=", 1)[0] == option for word in argv[len(path):])]
        assert users
        for block, argv in users:  # every command line that uses the option now fails the checks
            assert check_pages(parser, [(block, argv)]), f"{block.where}: removing {' '.join(path)} {option} " \
                                                         f"went unnoticed in pcseg {' '.join(argv)}"


def test_static_checks_catch_mistakes():
    """The checker itself: unknown flags, commands, config keys and config files are reported."""
    from pcseg.cli import build_parser

    parser, keys = build_parser(), _valid_keys()
    assert check_argv(parser, ["train", "configs/synthetic/supervised.yaml", "--out", "x", "optim.lr=0.1"], keys) == []
    assert "unrecognized arguments: --epochs" in check_argv(parser, ["train", "c.yaml", "--epochs", "3"], keys)[0]
    assert "invalid choice: 'fit'" in check_argv(parser, ["fit", "c.yaml"], keys)[0]
    assert check_argv(parser, ["train", "c.yaml", "optim.lrate=0.1"], keys) == [
        "unknown config key 'optim.lrate' in 'optim.lrate=0.1'"]
    assert check_argv(parser, ["train", "configs/synthetic/nothing.yaml"], keys) == [
        "config file configs/synthetic/nothing.yaml does not exist"]
    assert check_argv(parser, ["select", "--ratio", "0.1", "--oracle", "--out", "b.pt", "active.radius=0.3"],
                      keys) == []
    assert pcseg_argvs("OMP_NUM_THREADS=2 torchrun --nproc_per_node 2 -m pcseg.cli train c.yaml | tail -1") == [
        ["train", "c.yaml"]]
    assert pcseg_argvs("pcseg config configs/a.yaml && pcseg demo --quick > out.txt") == [
        ["config", "configs/a.yaml"], ["demo", "--quick"]]
    assert shell_commands("# note\npcseg train a.yaml \\\n   --out x  # why\n\nls\n") == [
        "pcseg train a.yaml     --out x  # why", "ls"]
    assert shell_commands("cat > c.yaml <<'YAML'\ndata:\n  root: x  # don't\nYAML\npcseg train c.yaml\n") == [
        "cat > c.yaml <<'YAML'\ndata:\n  root: x  # don't\nYAML", "pcseg train c.yaml"]
    assert pcseg_argvs("cat > c.yaml <<'YAML'\npcseg: 1\nYAML") == []


def test_directives_and_fences(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n<!-- test: setup scannet-raw raw -->\n<!-- test: expect \"mIoU\" -->\n```bash\npcseg demo\n"
                    "```\n\n<!-- test: no-run needs a GPU -->\nsome words\n```python\nprint(1)\n```\n````text\n```\n"
                    "````\n")
    first, second, third = extract_blocks(page)
    assert (first.lang, first.line, first.code) == ("bash", 4, "pcseg demo\n")
    assert first.directives == [("setup", "scannet-raw raw"), ("expect", "mIoU")] and first.runs
    assert second.lang == "python" and second.directives == [] and second.runs  # words in between cut the link
    assert third.lang == "text" and third.code == "```\n" and not third.runs


def test_runner_fails_where_a_page_is_wrong(tmp_path, monkeypatch):
    """A failing command, an unmet expectation, a wrong exit status and a raising python block all fail."""
    monkeypatch.chdir(tmp_path)
    session = Session(tmp_path)
    page = tmp_path / "p.md"

    def block(lang, code, *directives):
        return Block(page, 1, lang, code, list(directives))

    assert "max_points: 0" in session.run_block(block("bash", "pcseg config configs/synthetic/supervised.yaml\n"))
    with pytest.raises(AssertionError, match="exited with 2"):
        session.run_block(block("bash", "pcseg config configs/synthetic/nothing.yaml\n"))
    with pytest.raises(AssertionError, match="exited with 1"):
        session.run_block(block("bash", "ls configs\nfalse\n"))
    with pytest.raises(AssertionError, match="output lacks 'lr: 7'"):
        session.run_block(block("bash", "pcseg config\n", ("expect", "lr: 7")))
    with pytest.raises(AssertionError, match=r"exited with 0 \(expected 1\)"):
        session.run_block(block("bash", "pcseg config\n", ("status", "1")))
    with pytest.raises(ZeroDivisionError):
        session.run_block(block("python", "1 / 0\n"))
    session.run_block(block("bash", "cat > configs/c.yaml <<'YAML'\ntrain:\n  steps: 7\nYAML\n"))
    assert "steps: 7" in session.run_block(block("bash", "pcseg config configs/c.yaml\n"))


def test_missing_sample_data_skips_the_block_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "SHARED_DATA", tmp_path / "absent")
    session = Session(tmp_path)
    block = Block(tmp_path / "p.md", 1, "python", "print(1)\n", [("setup", "kitti-object data/kitti/object")])
    with pytest.raises(SampleMissing, match="absent/kitti/object not found"):
        session.run_block(block)
