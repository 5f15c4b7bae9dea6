"""The installed console script and its command list."""
import subprocess
import sys

from click.testing import CliRunner

from ragar_data import __version__
from ragar_data.cli.main import COMMANDS, cli


def test_help_lists_every_command_with_a_description():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name, (_, _, description) in COMMANDS.items():
        assert name in result.output and description.split()[0] in result.output


def test_every_listed_command_imports():
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, f"{name}: {result.output} {result.exception!r}"


def test_console_script_prints_version():
    result = subprocess.run([sys.executable, "-m", "ragar_data.cli.main", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout
