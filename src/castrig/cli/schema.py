"""``castrig schema recipe|profile``: the JSON Schema editors use to check and complete YAML."""

from __future__ import annotations

import typer

from castrig.errors import BadInput

HELP = """Print the JSON Schema of a recipe or a profile (pydantic's, with descriptions, units, ranges).

Save it next to your files and add this first line to a recipe; the YAML language server
(VS Code and others) then validates and completes the recipe as you type:

  # yaml-language-server: $schema=./recipe.schema.json

Examples:

  castrig schema recipe > recipe.schema.json
  castrig schema profile > profile.schema.json
"""


def schema(kind: str = typer.Argument(..., metavar="recipe|profile", help="Which file's schema: recipe or profile.")) -> None:
    from castrig.docs_gen import SCHEMA_KINDS, schema_text

    if kind not in SCHEMA_KINDS:
        raise BadInput(f"castrig schema {kind!r}: not a schema (allowed: one of {', '.join(SCHEMA_KINDS)})", field="KIND")
    typer.echo(schema_text(kind), nl=False)


schema.__doc__ = HELP


def mount(app: typer.Typer) -> None:
    app.command(name="schema", help=HELP)(schema)
