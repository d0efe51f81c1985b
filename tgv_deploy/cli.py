"""The ``tgv-deploy`` command line.

Every subcommand goes options -> config -> one library call -> report.  User errors
(:class:`tgv_deploy.errors.TgvDeployError`) end as one line on stderr and the error's exit code;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys

import click

from tgv_deploy import __version__
from tgv_deploy.errors import TgvDeployError

#: Exit code of an unexpected exception: a bug, reported with its traceback.
EXIT_BUG = 70


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tgv-deploy")
@click.option("--debug", is_flag=True, help="Show tracebacks for user errors too.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Learned TGV reconstruction (U-TGV): train, export to ONNX, build TensorRT engines, run, benchmark.

    Exit codes: 0 success, 1 generic user error, 2 missing backend/GPU, 3 bad input,
    4 contract mismatch, 5 integrity failure, 70 internal error.
    """
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the click group and turns user errors into exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="tgv-deploy", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except TgvDeployError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception:
        import traceback

        traceback.print_exc()
        click.echo("internal error: this is a bug in tgv-deploy; please report it with the traceback above", err=True)
        sys.exit(EXIT_BUG)
