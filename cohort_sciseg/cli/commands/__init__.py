"""The subcommands of ``cohort-sciseg``: one dataclass each, whose ``run(out)`` prints and returns the exit status."""

from cohort_sciseg.cli.commands.compare import CompareCommand
from cohort_sciseg.cli.commands.export import ExportNnunetCommand
from cohort_sciseg.cli.commands.longitudinal import LongitudinalCommand
from cohort_sciseg.cli.commands.ratings import RatingsPrepareCommand, RatingsWorklistCommand
from cohort_sciseg.cli.commands.run import DemoCommand, ReportCommand, RunCommand
from cohort_sciseg.cli.commands.scans import DiscoverCommand, SynthCommand
from cohort_sciseg.cli.commands.single import AnalyzeLesionCommand, MetricsCommand, SegmentCommand
from cohort_sciseg.cli.commands.validate import ValidateCommand

__all__ = [
    "AnalyzeLesionCommand",
    "CompareCommand",
    "DemoCommand",
    "DiscoverCommand",
    "ExportNnunetCommand",
    "LongitudinalCommand",
    "MetricsCommand",
    "RatingsPrepareCommand",
    "RatingsWorklistCommand",
    "ReportCommand",
    "RunCommand",
    "SegmentCommand",
    "SynthCommand",
    "ValidateCommand",
]
