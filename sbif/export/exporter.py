"""`export`: an SB2 save file in, a validated (and, with the live loader, verified) SBIF file out, together with
what the caller must know to use it: where its observation normalization came from (or why there is none),
whether SB2 checked it, what was inferred, and what the file cannot express.

Observation normalization follows the rl-baselines-zoo's own rule (its utils.get_saved_hyperparams): beside
`DIR/ENV.pkl` (or `.zip`) the folder `DIR/ENV/` may hold `config.yml` and the statistics; the config's
`normalize` decides, and without a config the statistics are applied when they are there. Explicit options
override what is found beside the model; two explicit options that contradict each other are an error, since
either guess could silently break the agent.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ..errors import ExportError, UnsupportedError, preview
from ..format import SbifFile
from .build import build_sbif

if TYPE_CHECKING:
    from .normalization import ObservationNormalization

#: 'safe' reads the file as data (any environment, no code from the file runs); 'live' loads it with
#: Stable-Baselines itself (the SB2 environment only) and can verify the export against SB2.
LOADERS = ("safe", "live")
DEFAULT_LOADER = "safe"
#: Observations the live loader compares SB2 and the exported file on.
VERIFY_OBSERVATIONS = 64


class ExportWarning(UserWarning):
    """Something the caller must act on for the exported policy to behave as it did when trained: an environment
    wrapper the file cannot express, or statistics left out with --no-normalize. The CLI prints these itself."""


class ExportResult(tuple):
    """What `export` made: `file` (the SbifFile), `report` (worst error per output from the comparison with SB2;
    empty when nothing was verified), `verification` (one sentence: verified against SB2, or why not), `notes`
    (what was decided for the caller: normalization folded or left out, network inferred) and `warnings` (what
    the caller must do; also issued as ExportWarning). It is the pair `(file, report)` that `export` returned
    before it said more, so `sbif_file, report = export(...)` and `export(...)[0]` keep working."""

    verification: str
    notes: List[str]
    warnings: List[str]

    def __new__(cls, file: SbifFile, report: Dict[str, float], verification: str, notes: List[str],
                warnings: List[str]) -> "ExportResult":
        result = super().__new__(cls, (file, report))
        result.verification, result.notes, result.warnings = verification, notes, warnings
        return result

    @property
    def file(self) -> SbifFile:
        return self[0]

    @property
    def report(self) -> Dict[str, float]:
        return self[1]

    @property
    def verified(self) -> bool:
        return bool(self.report)


def export(source: str, algorithm: Optional[str] = None, loader: str = DEFAULT_LOADER, verify: bool = True,
           policy_kwargs: Any = None, policy: Optional[str] = None, vecnormalize: Optional[str] = None,
           zoo_config: Optional[str] = None, normalize: bool = True) -> ExportResult:
    """Read `source` with `loader` and build its SBIF file; with the live loader and `verify`, compare it with SB2.

    `policy_kwargs` (a dict or JSON object text) and `policy` (a class name) complete what the file does not
    tell the safe loader. Observation normalization is folded into the graph as the zoo applied it (module
    docstring): `vecnormalize` (a VecNormalize save or obs_rms.pkl) and `zoo_config` (a zoo config.yml, whose
    `normalize` setting decides) override what lies beside `source`; `normalize=False` folds nothing, with an
    ExportWarning naming the statistics it leaves out.
    """
    if loader not in LOADERS:
        raise UnsupportedError("unknown loader {}; available: {}".format(preview(loader), ", ".join(LOADERS)))
    from .sb3.save_file import is_sb3_save

    if is_sb3_save(source):
        return export_sb3(source, algorithm, loader, verify, policy_kwargs, policy, vecnormalize, zoo_config, normalize)
    decision = decide_normalization(source, vecnormalize, zoo_config, normalize)
    if loader == "safe":
        from .safe import describe_safe_file

        description = describe_safe_file(source, algorithm, policy_kwargs, policy)
        sbif_file = build_sbif(description, decision.statistics)
        report: Dict[str, float] = {}
        verification = overrides_status(policy_kwargs, policy) or safe_loader_status()
    else:
        if policy_kwargs is not None or policy is not None:
            raise UnsupportedError("--policy-kwargs and --policy complete what the safe loader cannot read; the "
                                   "live loader takes the policy from Stable-Baselines itself")
        from . import live
        from ..runtime import Policy

        model, algorithm = live.load_sb2_model(source, algorithm)
        description = live.describe_live_model(model, algorithm, source)
        sbif_file = build_sbif(description, decision.statistics)
        report = live.verify_export(model, Policy(sbif_file, backend="numpy"), count=VERIFY_OBSERVATIONS,
                                    normalization=decision.statistics) if verify else {}
        verification = verified_status(report) if verify else "not verified: --no-verify"
    for warning in decision.warnings:
        warnings.warn(warning, ExportWarning, stacklevel=2)
    return ExportResult(sbif_file, report, verification, decision.notes + description.notes, decision.warnings)


def export_sb3(source: str, algorithm: Optional[str], loader: str, verify: bool, policy_kwargs: Any,
               policy: Optional[str], vecnormalize: Optional[str], zoo_config: Optional[str],
               normalize: bool) -> ExportResult:
    """`export` for an SB3 (or sb3-contrib) save: a version-2 file under the SB3 contract (SPEC section 5.9)."""
    if policy_kwargs is not None or policy is not None:
        raise UnsupportedError("--policy-kwargs and --policy complete SB2 files; an SB3 save names its policy and "
                               "kwargs itself")
    from .sb3.build import build_sb3_sbif
    from .sb3.statistics import read_sb3_normalization

    decision = decide_normalization(source, vecnormalize, zoo_config, normalize, read_sb3_normalization)
    if loader == "safe":
        from .sb3.safe import describe_safe_sb3

        description = describe_safe_sb3(source, algorithm)
        sbif_file = build_sb3_sbif(description, decision.statistics)
        report: Dict[str, float] = {}
        verification = safe_loader_status("stable_baselines3", "SB3")
    else:
        from .sb3 import live
        from ..runtime import Policy

        model, name = live.load_sb3_model(source, algorithm)
        description = live.describe_live_model(model, name, source)
        sbif_file = build_sb3_sbif(description, decision.statistics)
        report = live.verify_export(model, Policy(sbif_file, backend="numpy"), count=VERIFY_OBSERVATIONS,
                                    normalization=decision.statistics) if verify else {}
        verification = verified_status(report, "SB3") if verify else "not verified: --no-verify"
    for warning in decision.warnings:
        warnings.warn(warning, ExportWarning, stacklevel=3)
    return ExportResult(sbif_file, report, verification, decision.notes + description.notes, decision.warnings)


# -- verification status ------------------------------------------------------------------------------------------
def verified_status(report: Dict[str, float], framework: str = "SB2") -> str:
    """The live loader's comparison, worst element per output as a fraction of its error bound (SPEC section 6)."""
    details = ", ".join("{} {}".format(key, int(value)) if key == "action_mismatches" else
                        "{} {:.2g}".format(key, value) for key, value in report.items())
    return ("verified against {} on {} observations: {} (worst difference as a fraction of what float32 rounding "
            "allows, SPEC section 6)".format(framework, VERIFY_OBSERVATIONS, details))


def safe_loader_status(package: str = "stable_baselines", framework: str = "SB2") -> str:
    """Why a safe export is unverified, and how to verify it from here (the framework importable or not)."""
    environment = "the SB2 environment" if framework == "SB2" else "an environment with SB3 and sb3-contrib"
    if importlib.util.find_spec(package) is None:  # looks for the package without importing it
        return ("not verified: safe loader (no {} here) — run with --loader live in {} to verify".format(
            framework, environment))
    return ("not verified: safe loader (it reads the file as data and never runs {}) — run with --loader live to "
            "verify".format(framework))


def overrides_status(policy_kwargs: Any, policy: Optional[str]) -> Optional[str]:
    """The status of an export completed by the caller's overrides, which only the caller can vouch for (the
    live loader takes none, so SB2 never checks them); None without overrides."""
    given = ["--policy-kwargs {}".format(preview(policy_kwargs))] if policy_kwargs is not None else []
    given += ["--policy {}".format(preview(policy))] if policy is not None else []
    if not given:
        return None
    return ("not verified: overrides given ({}) — nothing has checked them against SB2; make sure they are how "
            "the model was trained".format(", ".join(given)))


# -- observation normalization ----------------------------------------------------------------------------------
class NormalizationDecision(object):
    """The statistics to fold in (None: none), the notes saying why, and warnings for the caller."""

    def __init__(self) -> None:
        self.statistics: Optional["ObservationNormalization"] = None
        self.notes: List[str] = []
        self.warnings: List[str] = []


def decide_normalization(source: Optional[str], vecnormalize: Optional[str] = None, zoo_config: Optional[str] = None,
                         normalize: bool = True, reader: Any = None) -> NormalizationDecision:
    """Which observation statistics to fold in, by the zoo's rule (module docstring), and why.

    Explicit `vecnormalize` and `zoo_config` take precedence over the files found beside `source` (None: look
    nowhere); `normalize=False` folds nothing and contradicts either. `vecnormalize` with a `zoo_config` that
    does not enable `normalize` is refused: the config says the zoo ran the model on raw observations, the
    statistics say otherwise, and folding either way without asking can break the agent silently.
    """
    from .normalization import read_normalization

    read = reader or read_normalization  # the statistics file's reader: SB2's VecNormalize and obs_rms by default
    from .zoo_config import (STATISTICS_FILES, ZooFolder, env_wrappers, frame_stack, normalize_kwargs,
                             read_zoo_config, statistics_beside, zoo_folder)

    if not normalize:
        for flag, value in (("--vecnormalize", vecnormalize), ("--zoo-config", zoo_config)):
            if value is not None:
                raise ExportError("{} {} conflicts with --no-normalize (both decide the observation "
                                  "normalization); pass one of them".format(flag, value))
    found = zoo_folder(source) if source is not None else ZooFolder()
    config_path = zoo_config or found.config
    decision = NormalizationDecision()
    frames = 1
    kwargs: Dict[str, Any] = {}  # VecNormalize's, from the config's normalize setting when it enables it
    setting = ""  # what the config says about normalize, in words
    if config_path is not None:
        config = read_zoo_config(config_path)
        frames = frame_stack(config, config_path)
        configured = normalize_kwargs(config, config_path)
        enabled = configured is not None and configured.get("norm_obs", True) is not False
        kwargs = configured if configured is not None and enabled else {}
        statistics = statistics_beside(os.path.dirname(config_path) or os.curdir)
        setting = _normalize_setting(config)
        rule = "{} {}".format("--zoo-config " + config_path if zoo_config is not None else config_path, setting)
        decision.warnings += ["{}: the zoo wrapped the environment in {}, which the .sbif file cannot express: "
                              "wrap your environment the same way before calling predict".format(config_path, name)
                              for name in env_wrappers(config, config_path)]
    else:
        statistics = found.statistics
        enabled = statistics is not None
        rule = "no config.yml beside it; the zoo applies the statistics it finds there"
    per_frame = ", per frame of {} stacked frames".format(frames) if frames > 1 else ""

    if not normalize:
        decision.notes.append("no observation normalization (--no-normalize)")
        if enabled and statistics is not None:
            decision.warnings.append(
                "--no-normalize: the observation statistics in {} are not folded in ({}); predict then expects "
                "observations already normalized as the zoo's VecNormalize did".format(statistics, rule))
        return decision
    if vecnormalize is not None:
        if zoo_config is not None and not enabled:
            raise ExportError("--vecnormalize {} conflicts with --zoo-config {}, which {} (the zoo ran the model on "
                              "raw observations); pass only the one that is right".format(vecnormalize, zoo_config,
                                                                                          setting))
        if config_path is None:
            how = "--vecnormalize"
        elif enabled:
            how = "--vecnormalize, with the normalize settings of {}".format(config_path)
        else:
            how = "--vecnormalize, overriding {}, which {}".format(config_path, setting)
        decision.statistics = read(vecnormalize, kwargs.get("clip_obs"), kwargs.get("epsilon"), frames)
        decision.notes.append("folded observation normalization from {} ({}{})".format(vecnormalize, how, per_frame))
        return decision
    if not enabled:
        if statistics is not None:
            decision.notes.append("no observation normalization: {}, so {} is not applied (as in the zoo)".format(
                rule, statistics))
        return decision
    if statistics is None:
        raise ExportError("{} enables normalize but neither {} is beside it; pass --vecnormalize PATH, or "
                          "--no-normalize to export without it".format(config_path, " nor ".join(STATISTICS_FILES)))
    decision.statistics = read(statistics, kwargs.get("clip_obs"), kwargs.get("epsilon"), frames)
    decision.notes.append("folded observation normalization from {} ({}{})".format(statistics, rule, per_frame))
    return decision


def _normalize_setting(config: Dict[str, Any]) -> str:
    """What a zoo config says about normalize, as its YAML wrote it (kwargs text bounded: it is the file's)."""
    value = config.get("normalize")
    if value is None:
        return "does not set normalize"
    if isinstance(value, bool):
        return "says normalize: {}".format("true" if value else "false")
    return "says normalize: {}".format(preview(value))
