"""The ``taxonomist`` command line: thin commands that parse, call the library (or a server)
and print.

One module per command group (``train``, ``validate``, ``models``, ``pipeline``,
``retrieval``, ``service``, ``demo``) over a local and a remote backend with the same operations
(``backend``); what is shown, and how user errors become one message with exit status 2
(``--debug`` shows the traceback), lives in ``output``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from taxonomist.cli import demo, models, monitor, pipeline, retrieval, service, train, validate
from taxonomist.cli.output import CliGroup, configure_logging

app = typer.Typer(
    name="taxonomist",
    cls=CliGroup,
    help=(
        "Turn a table of records into a tuned, validated, registered classifier.\n\n"
        "Typical session (taxonomist sample apps.csv writes a table to try it on):\n\n"
        "  taxonomist profile apps.csv --target prime_genre\n\n"
        "  taxonomist train apps.csv --target prime_genre --name apps --time-budget 120\n\n"
        "  taxonomist predict apps@champion new_apps.csv --output scored.csv\n\n"
        "  taxonomist evaluate apps labelled.csv --target prime_genre\n\n"
        "  taxonomist models show apps --config > apps.yaml  (then: train DATA --config "
        "apps.yaml)\n\n"
        "Models and runs live in TAXONOMIST_HOME (default ~/.taxonomist); open them with "
        "'mlflow ui --backend-store-uri sqlite:///$TAXONOMIST_HOME/mlflow.db'."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    configure_logging(verbose or debug)  # CliGroup reads --debug


app.command()(train.train)
app.command()(train.predict)
app.command()(train.evaluate)
app.command()(train.profile)
app.command()(validate.validate)
app.add_typer(models.app, name="models")
app.add_typer(monitor.app, name="monitor")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(retrieval.app, name="retrieval")
app.command()(service.serve)
app.command()(service.ui)
app.command()(service.doctor)
app.command()(demo.demo)
app.command()(demo.sample)


def main() -> None:
    """The console script ``taxonomist``."""
    app()


__all__ = ["app", "main"]
