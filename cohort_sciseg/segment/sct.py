"""The SCIseg model that an installed Spinal Cord Toolbox (SCT) holds: ``--model sct:lesion_sci_t2``.

SCT installs its deep-learning models in ``$SCT_DIR/data/deepseg_models/<model name>``
(``__deepseg_dir__`` in ``spinalcordtoolbox/utils/sys.py``); for the task
``lesion_sci_t2`` that is ``model_seg_sci_multiclass_sc_lesion_nnunet`` (SCIsegV2,
release r20240729), whose nnU-Net results folder is the one ``nnUNetTrainer*`` folder
inside, next to SCT's provenance file ``source.json``
(``{"model_name", "model_urls", "custom"}``). :func:`resolve_sct_model` finds that
folder; nothing is ever downloaded (installing is SCT's job, done once by the user).

Model strings::

    sct:lesion_sci_t2                              an SCT task of SCT_TASKS
    sct:model_seg_sci_multiclass_sc_lesion_nnunet  an SCT model folder name (``model_*``)
    sct:/opt/sct_7.0:lesion_sci_t2                 the same, in that SCT folder

Where SCT is, in this order: the folder in the model string; the ``SCT_DIR``
environment variable (SCT's installer writes it into the shell's rc file); the
folder above the ``bin/`` of an ``sct_deepseg`` (else ``sct_check_dependencies``)
executable on ``PATH`` (the installer puts ``$SCT_DIR/bin`` there). No other place
is searched: the installer's default folder (``~/sct_<version>``) depends on the
version, and several versions may sit side by side.

No torch and no nnU-Net here: this module only reads folders and ``source.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cohort_sciseg.errors import SegmentationError, format_error

__all__ = [
    "SCT_EXECUTABLES",
    "SCT_PREFIX",
    "SCT_TASKS",
    "SctModel",
    "find_sct_dir",
    "is_sct_spec",
    "resolve_sct_model",
]

logger = logging.getLogger(__name__)

#: Prefix of a model string that names a model of an installed SCT.
SCT_PREFIX = "sct:"
#: SCT tasks whose model gives cord and lesion masks -> SCT's model folder name. Other SCT
#: tasks (``spinalcord``, ``lesion_ms``, ...) are not SCIseg-style cord + lesion models.
SCT_TASKS: Mapping[str, str] = {
    "lesion_sci_t2": "model_seg_sci_multiclass_sc_lesion_nnunet",  # SCT >= 7.0
    "seg_sc_lesion_t2w_sci": "model_seg_sci_multiclass_sc_lesion_nnunet",  # SCT 6.x name of the same task
}
#: Executables whose ``bin/..`` is SCT's folder, tried in this order on ``PATH``.
SCT_EXECUTABLES = ("sct_deepseg", "sct_check_dependencies")

_MODELS_SUBDIR = ("data", "deepseg_models")
_SOURCE_JSON = "source.json"
_RELEASE_RE = re.compile(r"/releases/download/([^/]+)/")
_FIX_PATH = "or pass --model PATH to the model folder (e.g. an unzipped SCIseg release)"


@dataclass(frozen=True, slots=True)
class SctModel:
    """An SCT model folder and where it came from.

    Attributes
    ----------
    spec
        The model string as given (``"sct:lesion_sci_t2"``).
    path
        The model folder (``<sct_dir>/data/deepseg_models/<model_name>``): what
        :func:`~cohort_sciseg.segment.model.find_model` loads and the checksum covers.
    trainer_dir
        Its one ``nnUNetTrainer*`` folder (the nnU-Net results folder).
    sct_dir
        SCT's installation folder.
    found_by
        How ``sct_dir`` was found: ``"model string"``, ``"SCT_DIR"`` or
        ``"PATH (<executable>)"``.
    model_name
        SCT's model name (the model folder's name).
    task
        The SCT task named in the string, ``None`` when a model name was given.
    model_urls
        Release URL(s) SCT installed the model from (``source.json``; empty without it).
    custom
        ``source.json``'s ``custom`` flag (installed with ``-custom-url``); ``None`` without it.
    """

    spec: str
    path: Path
    trainer_dir: Path
    sct_dir: Path
    found_by: str
    model_name: str
    task: str | None
    model_urls: tuple[str, ...]
    custom: bool | None

    @property
    def release(self) -> str | None:
        """Release tag of the first URL (``r20240729``), if it is a GitHub release URL."""
        for url in self.model_urls:
            if m := _RELEASE_RE.search(url):
                return m.group(1)
        return None

    def record(self) -> dict[str, Any]:
        """JSON-ready provenance (recorded by the engine's ``describe()`` and the sidecars)."""
        return {
            "kind": "sct",
            "spec": self.spec,
            "sct_dir": str(self.sct_dir),
            "found_by": self.found_by,
            "model_name": self.model_name,
            "task": self.task,
            "model_urls": list(self.model_urls),
            "release": self.release,
            "custom": self.custom,
        }


def is_sct_spec(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` is a model string of an installed SCT (``"sct:..."``; a path never is)."""
    return isinstance(model, str) and model.startswith(SCT_PREFIX)


def _split_spec(spec: str) -> tuple[str | None, str]:
    """``(sct folder or None, task or model name)`` of ``sct:[DIR:]NAME``."""
    body = spec[len(SCT_PREFIX):]
    # The name comes after the last colon, so a Windows folder (C:\sct) keeps its own.
    folder, sep, name = body.rpartition(":")
    if not name or (sep and not folder):
        known = ", ".join(sorted(SCT_TASKS))
        msg = format_error(
            f"model string {spec!r} names no SCT task or model",
            expected=f"sct:TASK or sct:SCT_FOLDER:TASK, with TASK one of {known} (or an SCT model folder name)",
            fix="pass --model sct:lesion_sci_t2",
        )
        raise SegmentationError(msg)
    return (folder if sep else None), name


def _model_name(spec: str, name: str) -> tuple[str, str | None]:
    """``(model folder name, task or None)`` of the name in a model string."""
    if name in SCT_TASKS:
        return SCT_TASKS[name], name
    if name.startswith("model_"):
        return name, None
    known = ", ".join(repr(t) for t in sorted(SCT_TASKS))
    msg = format_error(
        f"unknown SCT task {name!r} in {spec!r}",
        expected=f"one of {known} (SCT's cord + lesion tasks), or an SCT model folder name starting "
        "with 'model_'",
        fix="pass --model sct:lesion_sci_t2 (other SCT tasks do not segment cord and lesion)",
    )
    raise SegmentationError(msg)


def _sct_folder(path: Path, origin: str) -> Path:
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        where = ("correct the folder in the model string (sct:/path/to/sct:lesion_sci_t2)"
                 if origin == "the model string" else "set SCT_DIR to SCT's installation folder")
        msg = format_error(
            f"SCT folder from {origin} {what}",
            path=path,
            expected="the Spinal Cord Toolbox installation folder (holding bin/ and data/deepseg_models/)",
            fix=f"{where}, {_FIX_PATH}",
        )
        raise SegmentationError(msg, path=path)
    return path.resolve()


def _from_executable(executable: str) -> Path:
    """SCT's folder of one of its executables: ``bin/..`` of the file (links followed)."""
    candidate = Path(executable).resolve().parent.parent
    # Inside SCT's own virtual environment (<sct>/python/envs/venv_sct/bin) rather than its
    # launchers (<sct>/bin): SCT's folder is three levels further up.
    if candidate.parent.name == "envs" and candidate.parent.parent.name == "python":
        candidate = candidate.parents[2]
    return candidate


def find_sct_dir(
    folder: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    which: Callable[[str], str | None] = shutil.which,
) -> tuple[Path, str]:
    """``(SCT's folder, how it was found)``: ``folder``, else ``SCT_DIR``, else an SCT executable on PATH.

    Raises
    ------
    SegmentationError
        The folder given (or ``SCT_DIR``) is not a folder; no SCT was found.
    """
    if folder is not None:
        return _sct_folder(Path(folder).expanduser(), "the model string"), "model string"
    env = environ.get("SCT_DIR", "")
    if env:
        return _sct_folder(Path(env).expanduser(), "SCT_DIR"), "SCT_DIR"
    for name in SCT_EXECUTABLES:
        exe = which(name)
        if exe:
            return _sct_folder(_from_executable(exe), f"PATH ({exe})"), f"PATH ({exe})"
    msg = format_error(
        "Spinal Cord Toolbox not found: SCT_DIR is not set and neither "
        + " nor ".join(SCT_EXECUTABLES) + " is on PATH",
        expected="an SCT installation (its installer sets SCT_DIR and puts $SCT_DIR/bin on PATH)",
        fix="set SCT_DIR to SCT's folder (export SCT_DIR=/path/to/sct), pass --model "
        f"sct:/path/to/sct:lesion_sci_t2, {_FIX_PATH}",
    )
    raise SegmentationError(msg)


def _install_fix(model_name: str) -> str:
    if model_name == SCT_TASKS["lesion_sci_t2"]:
        return ("run once `sct_deepseg lesion_sci_t2 -install` (SCT >= 7.0; SCT 6.x: `sct_deepseg -install-task "
                "seg_sc_lesion_t2w_sci`), which downloads it into SCT's folder, ")
    return f"install it once with SCT (`sct_deepseg TASK -install`, TASK being the one that uses {model_name}), "


def _trainer_dir(model_dir: Path, spec: str) -> Path:
    from cohort_sciseg.segment.model import trainer_folders  # model.py imports this module

    found = trainer_folders(model_dir)
    if len(found) == 1:
        return found[0]
    what = "no nnUNetTrainer* folder" if not found else (
        f"{len(found)} nnUNetTrainer* folders ({', '.join(p.name for p in found)})"
    )
    msg = format_error(
        f"SCT model folder of {spec!r} holds {what}",
        path=model_dir,
        expected="exactly one nnUNetTrainer*__<plans>__3d_fullres folder (SCT's own rule)",
        fix="reinstall the model with SCT (`sct_deepseg lesion_sci_t2 -install`), or pass --model PATH to "
        "the one nnUNetTrainer* folder to use",
    )
    raise SegmentationError(msg, path=model_dir)


def _read_source(model_dir: Path) -> tuple[tuple[str, ...], bool | None]:
    """``(model URLs, custom flag)`` of SCT's ``source.json`` (``((), None)`` without a readable one)."""
    path = model_dir / _SOURCE_JSON
    if not path.is_file():
        return (), None
    try:
        source = json.loads(path.read_text())
        if not isinstance(source, dict):
            raise TypeError(f"a JSON {type(source).__name__}, not an object")
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        # Provenance only: the weights are still checked by their checksums.
        logger.warning("%s is unreadable (%s): the model's release is not recorded", path, exc)
        return (), None
    urls = source.get("model_urls")
    # SCT writes the URL it used (a string), a list of mirrors, or {seed: URL} for ensembles.
    if isinstance(urls, str):
        found: tuple[str, ...] = (urls,)
    elif isinstance(urls, list):
        found = tuple(str(u) for u in urls)
    elif isinstance(urls, dict):
        found = tuple(str(u) for v in urls.values() for u in (v if isinstance(v, list) else [v]))
    else:
        found = ()
    custom = source.get("custom")
    return found, (bool(custom) if custom is not None else None)


def resolve_sct_model(
    spec: str,
    *,
    environ: Mapping[str, str] = os.environ,
    which: Callable[[str], str | None] = shutil.which,
) -> SctModel:
    """Find the model folder an installed SCT holds for ``spec`` (``"sct:lesion_sci_t2"``).

    Parameters
    ----------
    spec
        ``sct:TASK``, ``sct:MODEL_NAME`` or ``sct:SCT_FOLDER:TASK`` (see the module docstring).
    environ
        Environment read for ``SCT_DIR``.
    which
        Finds an executable on ``PATH`` (:func:`shutil.which`).

    Returns
    -------
    SctModel
        The model folder (``<sct>/data/deepseg_models/<model>``) and its provenance.

    Raises
    ------
    SegmentationError
        Not an SCT model string, unknown task, SCT not found, SCT folder not a folder,
        model not installed, no or several ``nnUNetTrainer*`` folders.
    """
    if not is_sct_spec(spec):
        msg = format_error(f"{spec!r} is not an SCT model string", expected=f"'{SCT_PREFIX}TASK'",
                           fix="pass --model sct:lesion_sci_t2, or a model folder path")
        raise SegmentationError(msg)
    folder, name = _split_spec(spec)
    model_name, task = _model_name(spec, name)
    sct_dir, found_by = find_sct_dir(folder, environ=environ, which=which)
    model_dir = sct_dir.joinpath(*_MODELS_SUBDIR, model_name)
    if not model_dir.is_dir():
        msg = format_error(
            f"SCT model {model_name!r} is not installed in the SCT found by {found_by}",
            path=model_dir,
            expected=f"the folder SCT installs it in ($SCT_DIR/{'/'.join(_MODELS_SUBDIR)}/{model_name})",
            fix=_install_fix(model_name) + _FIX_PATH,
        )
        raise SegmentationError(msg, path=model_dir)
    urls, custom = _read_source(model_dir)
    return SctModel(
        spec=spec,
        path=model_dir,
        trainer_dir=_trainer_dir(model_dir, spec),
        sct_dir=sct_dir,
        found_by=found_by,
        model_name=model_name,
        task=task,
        model_urls=urls,
        custom=custom,
    )
