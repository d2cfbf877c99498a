"""``frontline label`` and ``frontline report``: the analyst's commands (registered on the main typer app)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

DEFAULT_MODEL = "models:/frontline@champion"


def _split(s: str | None) -> list[str]:
    return [c.strip() for c in (s or "").split(",") if c.strip()]


def print_summary(summary: dict, console: Console) -> None:
    t = Table(title=f"labelled {summary['input']} → {summary['output']}", show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    t.add_row("rows read", f"{summary['rows_read']:,}")
    t.add_row("labelled", f"{summary['labelled']:,}")
    t.add_row("rejected", f"{summary['rejected']:,}"
              + (f"  ({', '.join(f'{k}: {v:,}' for k, v in summary['reject_reasons'].items())})"
                 if summary["reject_reasons"] else ""))
    t.add_row("skipped (not inbound)", f"{summary['skipped_not_inbound']:,}")
    if summary.get("blank_lines"):
        t.add_row("blank lines", f"{summary['blank_lines']:,}")
    if summary.get("duplicates_reused"):
        t.add_row("duplicates (labelled once)", f"{summary['duplicates_reused']:,}")
    if summary.get("multiline_fields"):
        rows = summary.get("multiline_rows") or []
        t.add_row("[yellow]quoted fields spanning lines[/]", f"{summary['multiline_fields']:,}"
                  + (f"  (rows {', '.join(map(str, rows[:10]))}{' …' if len(rows) > 10 else ''})" if rows else ""))
    if summary.get("input_damaged"):
        t.add_row("[red]input damaged[/]", "the file ends early or is corrupt: see the rejects file")
    t.add_row("time", f"{summary['seconds']:,.1f} s" + (" (resumed)" if summary["resumed"] else ""))
    t.add_row("posts/s", f"{summary['posts_per_second']:,.0f}")
    t.add_row("rejects file", summary["rejects_file"])
    console.print(t)


def register(app: typer.Typer) -> None:
    @app.command()
    def label(
        input: Annotated[Path, typer.Argument(help="Export to label: .csv, .jsonl or .parquet (.gz for CSV/JSONL).",
                                              exists=True, dir_okay=False)],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.csv, .jsonl or .parquet).")],
        in_format: Annotated[str | None, typer.Option(help="csv | jsonl | parquet (default: from extension).")] = None,
        out_format: Annotated[str | None, typer.Option(help="csv | jsonl | parquet (default: from extension).")] = None,
        id_col: Annotated[str | None, typer.Option(help="Id column (default: id, tweet_id, post_id...).")] = None,
        text_col: Annotated[str | None, typer.Option(help="Text column (default: text, body, message...).")] = None,
        time_col: Annotated[str | None, typer.Option(help="Timestamp column (default: created_at, timestamp...).")] = None,
        company_col: Annotated[str | None, typer.Option(
            help="Company column (default: company, brand...; else the first @handle the post addresses).")] = None,
        inbound_col: Annotated[str | None, typer.Option(
            help="Boolean column: only rows where it is true are labelled (default: 'inbound' if present; "
                 "'none' labels every row).")] = None,
        carry: Annotated[str | None, typer.Option(help="Extra input columns to carry through, comma-separated.")] = None,
        model: Annotated[str, typer.Option(help="MLflow model URI or bundle directory.")] = DEFAULT_MODEL,
        batch_size: Annotated[int, typer.Option(min=1, help="Posts per model forward pass.")] = 64,
        chunk_rows: Annotated[int, typer.Option(min=1, help="Input rows per chunk / part file (resume unit).")] = 2000,
        resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from OUTPUT.parts/.")] = False,
        restart: Annotated[bool, typer.Option("--restart", help="Discard an unfinished run's parts and start over.")] = False,
        keep_parts: Annotated[bool, typer.Option("--keep-parts", help="Keep OUTPUT.parts/ after assembling.")] = False,
        threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for the model (default: the runtime's choice).")] = None,
        dedup: Annotated[bool, typer.Option(help="Label exact-duplicate texts once per run and fan the result out.")] = True,
        engine: Annotated[str, typer.Option(help="'local' (streaming, this process) or 'spark' (mlflow spark_udf).")] = "local",
        spark_master: Annotated[str, typer.Option(help="Spark master for --engine spark.")] = "local[*]",
        progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    ):
        """Label a historical export (CSV / JSONL / Parquet): streaming, resumable, nothing lost."""
        from serving.batch.labelling import LabelError, LabelOptions, run_label

        console = Console(stderr=True)
        from training.release import ensure_champion_for

        ensure_champion_for(model)  # a fresh clone labels with the shipped release
        try:
            if engine == "spark":
                from serving.batch.spark import SparkOptions, run_spark_label

                summary = run_spark_label(SparkOptions(
                    input=input, output=out, in_format=in_format, out_format=out_format, id_col=id_col,
                    text_col=text_col, time_col=time_col, company_col=company_col, inbound_col=inbound_col,
                    carry=_split(carry), model=model, master=spark_master))
                console.print_json(json.dumps(summary))
                return
            if engine != "local":
                raise LabelError(f"unknown engine {engine!r}: use 'local' or 'spark'")
            summary = run_label(LabelOptions(
                input=input, output=out, in_format=in_format, out_format=out_format, id_col=id_col, text_col=text_col,
                time_col=time_col, company_col=company_col, inbound_col=inbound_col, carry=_split(carry), model=model,
                batch_size=batch_size, chunk_rows=chunk_rows, resume=resume, restart=restart, keep_parts=keep_parts,
                threads=threads, dedup=dedup), progress=progress, console=console)
        except LabelError as e:
            console.print(f"[red]error:[/] {e}")
            raise typer.Exit(2)
        print_summary(summary, console)

    @app.command()
    def report(
        labelled: Annotated[Path, typer.Argument(
            help="Output of `frontline label`: a .csv, .jsonl or .parquet file, or the Spark engine's directory.",
            exists=True, dir_okay=True)],
        out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
        in_format: Annotated[str | None, typer.Option(help="csv | jsonl | parquet (default: from extension).")] = None,
        top_companies: Annotated[int, typer.Option(min=1, help="Companies shown, by volume.")] = 15,
        spike_factor: Annotated[float, typer.Option(help="Spike: day count >= this x trailing median.")] = 3.0,
        spike_window: Annotated[int, typer.Option(min=1, help="Trailing baseline window, days.")] = 7,
        spike_min_count: Annotated[int, typer.Option(min=1, help="Spike: at least this many posts that day.")] = 10,
        title: Annotated[str, typer.Option(help="Report title.")] = "frontline — why customers came to social",
        tz: Annotated[str | None, typer.Option(
            "--tz", help="Time zone of the daily buckets, an IANA name such as Europe/Paris (default UTC).")] = None,
        compare_to: Annotated[Path | None, typer.Option(
            help="A previous period's labelled file or Spark directory: show volume and label-mix changes.",
            exists=True, dir_okay=True)] = None,
        examples: Annotated[int, typer.Option(
            min=0, help="Example posts per spike (most urgent first; needs a text column: label with --carry "
                        "text).")] = 3,
        serve: Annotated[bool, typer.Option(
            "--serve", help="Serve the report on HOST:PORT with filters by company, issue type and dates "
                            "instead of writing --out.")] = False,
        host: Annotated[str, typer.Option(help="--serve: address to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="--serve: port (0 picks a free one).")] = 8050,
    ):
        """One self-contained HTML page: label mix, prior channels, companies, volume, spikes with example posts."""
        from serving.batch.labelling import LabelError
        from serving.batch.report import Report, ReportOptions, write_report

        console = Console(stderr=True)
        opts = ReportOptions(in_format=in_format, top_companies=top_companies, spike_factor=spike_factor,
                             spike_window=spike_window, spike_min_count=spike_min_count, title=title, tz=tz,
                             compare_to=compare_to, examples=examples)
        try:
            if serve:
                from serving.batch.report.serve import make_server

                server = make_server(Report(labelled, opts), host, port)
            else:
                info = write_report(labelled, out, opts)
        except LabelError as e:
            console.print(f"[red]error:[/] {e}")
            raise typer.Exit(2)
        if serve:
            h, p = server.server_address[:2]
            print(f"serving the report of {labelled} on http://{h}:{p}/ (filters: ?company=&issue=&from=&to=; "
                  "Ctrl-C stops)", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
            finally:
                server.server_close()
            return
        console.print(f"report of {info['posts']:,} posts written to {out} "
                      f"({len(info['spikes'])} issue-type and {len(info['company_spikes'])} company spike(s) flagged"
                      + (f"; compared with {info['previous_posts']:,} posts of {compare_to}" if compare_to else "")
                      + ")")
