"""The sections of a report, each built from the inputs that provide it: training, map,
clusters, sample comparison, provenance (quality: :mod:`kmervae.viz.report.quality`)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kmervae.errors import InputError
from kmervae.viz.report import BUILTIN_COLOURS, figures
from kmervae.viz.report.html import Column, Page, Section, esc, image, key_values, number, table
from kmervae.viz.report.inputs import ReportInput, of_kind, recorded_checksums

if TYPE_CHECKING:
    from kmervae.evaluate.labels import LabelTable

log = logging.getLogger(__name__)

#: rows of the largest clusters and of a composition table shown
TOP_ROWS = 20
#: checksums listed per input in the provenance section
MAX_CHECKSUMS = 16


def _mono(value: Any) -> str:
    return f"<code>{esc(value)}</code>"


def _command(prov: dict[str, Any]) -> str:
    command = prov.get("command")
    return " ".join(str(c) for c in command) if isinstance(command, list) else "–"


def read_tsv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """A TSV with a header line: (columns, rows), numbers converted."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh, delimiter="\t")
            header = next(reader, None)
            if not header:
                raise InputError(f"{path}: empty (expected a header line)")
            rows = [dict(zip(header, (_value(v) for v in row), strict=False)) for row in reader]
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return header, [r for r in rows if r]


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# -------------------------------------------------------------------------------- training


def best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The epoch the best checkpoint is from: the last one marked ``best``."""
    marked = [r["epoch"] for r in history if r.get("best")]
    return max(marked) if marked else None


def _run_facts(item: ReportInput, history: list[dict[str, Any]], best: int | None) -> str:
    record = item.record
    train = record.get("train_config") or {}
    model = record.get("model_config") or {}
    dataset = record.get("dataset") or {}
    split = record.get("split") or {}
    at_best = next((r for r in history if r["epoch"] == best), None)
    last = history[-1] if history else {}
    pairs = [
        ("epochs run", f"{len(history)} of {number(train.get('epochs'))}"),
        (
            "best epoch",
            f"{best} (validation loss {number(at_best.get('val_loss'))})"
            if at_best
            else "none yet (the KL warm-up epochs never count)",
        ),
        ("last validation loss", number(last.get("val_loss"))),
        (
            "schedule",
            esc(
                f"{train.get('schedule', '?')}, learning rate {train.get('lr', '?')}, batch "
                f"{train.get('batch_size', '?')}, KL warm-up {train.get('kl_warmup', '?')} epochs"
            ),
        ),
        (
            "model",
            esc(
                f"k-groups {model.get('ks', '?')}, hidden {model.get('hidden', '?')}, latent "
                f"{model.get('latent', '?')}, beta {model.get('beta', '?')}, dropout "
                f"{model.get('dropout', '?')}"
            ),
        ),
        (
            "training data",
            _mono(f"{dataset.get('path', '?')} ({number(dataset.get('n_rows'))} rows)"),
        ),
        (
            "split",
            esc(
                f"{number(split.get('train'))} training, {number(split.get('validation'))} "
                f"validation rows (seed {split.get('seed', '?')})"
            )
            if split
            else "–",
        ),
    ]
    return key_values(pairs)


def _card_metrics(card: dict[str, Any]) -> str:
    metrics = card.get("metrics") or {}
    pairs = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {number(v, 4)}" for k, v in value.items())
            pairs.append((key, esc(value)))
        else:
            pairs.append((key, esc(number(value, 4))))
    return key_values(pairs) if pairs else '<p class="muted">The card records no metrics.</p>'


def training_section(page: Page, section: Section, inputs: Sequence[ReportInput]) -> None:
    runs = of_kind(inputs, "run")
    run_paths = {r.path.resolve() for r in runs}
    for item in runs:
        history = item.data["history"]
        best = best_epoch(history)
        section.add(f"<h3>Run {_mono(item.path)}</h3>")
        section.add(_run_facts(item, history, best))
        if not history:
            section.add('<p class="muted">No epoch has finished yet.</p>')
        else:
            epochs = [r["epoch"] for r in history]

            def col(key: str, rows: list[dict[str, Any]] = history) -> list[Any]:
                return [r.get(key) for r in rows]

            groups = sorted(
                {g for r in history for g in (r.get("val_mse_per_k") or {})},
                key=lambda g: -int(g) if str(g).isdigit() else 0,
            )
            panels = [
                figures.curve_figure(
                    "loss",
                    epochs,
                    [
                        ("train", col("train_loss")),
                        ("train (eval mode)", col("train_loss_eval")),
                        ("validation", col("val_loss")),
                    ],
                    best_epoch=best,
                    log_y=True,
                ),
                figures.curve_figure(
                    "reconstruction (MSE × features)",
                    epochs,
                    [("train", col("train_recon")), ("validation", col("val_recon"))],
                    best_epoch=best,
                    log_y=True,
                ),
                figures.curve_figure(
                    "KL",
                    epochs,
                    [("train", col("train_kl")), ("validation", col("val_kl"))],
                    best_epoch=best,
                ),
                figures.curve_figure(
                    "learning rate", epochs, [("lr", col("lr"))], best_epoch=best, log_y=True
                ),
                figures.curve_figure(
                    "validation MSE per k-group",
                    epochs,
                    [
                        (f"{g}-mers", [(r.get("val_mse_per_k") or {}).get(g) for r in history])
                        for g in groups
                    ],
                    best_epoch=best,
                    log_y=True,
                ),
                figures.curve_figure(
                    "local-distance fidelity (Spearman)",
                    epochs,
                    [("validation", col("fidelity_spearman"))],
                    best_epoch=best,
                ),
            ]
            slots = "".join(page.figure(p) for p in panels if p is not None)
            section.add(f'<div class="grid">{slots}</div>')
            if best is not None:
                section.add(
                    f'<p class="muted">Dashed line: epoch {best}, the best validation loss '
                    "after the KL warm-up (the model folder's weights).</p>"
                )
        if "card" in item.data:
            section.add("<h4>Model card</h4>" + _card_metrics(item.data["card"]))
    for item in of_kind(inputs, "model"):
        if item.path.resolve().parent in run_paths:
            continue  # shown with its run
        config = item.record.get("config") or {}
        section.add(f"<h3>Model {_mono(item.path)} ({esc(config.get('kind', 'vae'))})</h3>")
        data = item.record.get("training_data") or {}
        pairs = [
            ("name", esc(item.record.get("name", item.path.name))),
            (
                "training data",
                _mono(f"{data.get('path', '?')} ({number(data.get('n_rows'))} rows)"),
            ),
        ]
        if item.record.get("weights_sha256"):
            pairs.append(("weights SHA-256", _mono(item.record["weights_sha256"])))
        section.add(key_values(pairs))
        section.add(_card_metrics(item.record))


# -------------------------------------------------------------------------------- map


def _samples_for(
    points: Any, item: ReportInput, samples: Path | None, inputs: Sequence[ReportInput]
) -> tuple[list[str | None] | None, str]:
    """Each drawn contig's sample and where it came from (None, "" when unknown)."""
    from kmervae.viz.report.mapview import samples_from_embeddings, samples_from_table

    wanted = set(points.ids)
    if samples is not None:
        found = samples_from_table(samples, wanted)
        return [found.get(i) for i in points.ids], f"samples from {samples}"
    made_from = str((item.record.get("embeddings") or {}).get("path", ""))
    stores = sorted(of_kind(inputs, "embeddings"), key=lambda e: str(e.path.resolve()) != made_from)
    for emb in stores:
        found = samples_from_embeddings(emb.data["embeddings"], wanted)
        if found:
            return [found.get(i) for i in points.ids], f"samples: the source files in {emb.path}"
    return None, ""


def _drawn_labels(
    labels: LabelTable, points: Any, item: ReportInput, colour: str
) -> list[tuple[str, list[str | None]]]:
    """Each label column with each drawn contig's label, checked as ``kmervae map`` checks
    its labels: no drawn contig labelled, or none with a label of the colour's column, is an
    error; some without one, a warning."""
    drawn = len(points.ids)
    rows = [labels.by_id.get(i) for i in points.ids]
    found = sum(r is not None for r in rows)
    if found == 0:
        raise InputError(
            f"{labels.path}: none of the {drawn:,} drawn contigs of {item.path} is labelled "
            f"there (first drawn id {points.ids[0]!r}); do the ids match?"
        )
    columns = [
        (rank, [None if r is None else r[j] for r in rows]) for j, rank in enumerate(labels.ranks)
    ]
    if colour not in BUILTIN_COLOURS:
        values = columns[labels.ranks.index(colour)][1]
        with_value = sum(v is not None for v in values)
        if with_value == 0:
            raise InputError(
                f"{labels.path}: none of the {drawn:,} drawn contigs of {item.path} has a "
                f"{colour} label there"
            )
        if with_value < drawn:
            log.warning(
                "%d of %d drawn contigs of %s have no %s in %s (grey)",
                drawn - with_value,
                drawn,
                item.path,
                colour,
                labels.path,
            )
    elif found < drawn:
        log.warning(
            "%d of %d drawn contigs of %s have no line in %s",
            drawn - found,
            drawn,
            item.path,
            labels.path,
        )
    return columns


def map_section(
    page: Page,
    section: Section,
    item: ReportInput,
    inputs: Sequence[ReportInput],
    points: Any,
    *,
    samples: Path | None,
    labels: LabelTable | None,
    colour: str,
    colour_asked: bool,
    top: int,
    seed: int,
) -> dict[str, Any]:
    """A map: an interactive scatter of its drawn ``points``
    (:func:`~kmervae.viz.report.mapview.map_points`) coloured by ``colour`` (gc, length,
    cluster or a column of ``labels``, a :class:`~kmervae.evaluate.labels.LabelTable` of
    the drawn contigs) and, when they are a sample, a density image of all of them. Returns
    what the report's provenance records of it."""
    from kmervae.viz.maps import axis_names, category_codes
    from kmervae.viz.report.mapview import clusters_of, density_png

    map_data = item.data["map"]
    n, drawn = map_data.n_rows, len(points.ids)
    notes = []
    clusters = None
    categories = None
    cluster_inputs = of_kind(inputs, "clusters")
    if cluster_inputs:
        chosen = cluster_inputs[0]
        file = chosen.data["clustering"]
        fmt = str(chosen.record.get("clusters_format", "kmervae"))
        found = clusters_of(file.file, fmt, set(points.ids))
        if found:
            clusters = [found.get(i) for i in points.ids]
        if colour == "cluster" and found:
            clustered: dict[str, str | None] = {**found}
            categories = category_codes([points.ids], clustered, drawn)[:2]
            notes.append(
                f"coloured by cluster ({esc(file.name)} of {_mono(chosen.path)}: "
                f"{len(found):,} of the {drawn:,} drawn contigs clustered; the {top} largest "
                "named, click a legend entry to hide it)"
            )
        elif colour == "cluster" and colour_asked:
            raise InputError(
                f"{file.file}: none of the {drawn:,} drawn contigs of {item.path} is "
                f"clustered there (first drawn id {points.ids[0]!r}); do the ids match?"
            )
        elif colour == "cluster":
            colour = "gc"
            notes.append(
                f"coloured by GC: none of the drawn contigs is in the clusters of "
                f"{_mono(chosen.path)}"
            )
    label_columns = []
    if labels is not None:
        label_columns = _drawn_labels(labels, points, item, colour)
    if labels is not None and colour not in BUILTIN_COLOURS:
        values = dict(label_columns)[colour]
        mapping: dict[str, str | None] = dict(zip(points.ids, values, strict=True))
        codes, names, with_value = category_codes([points.ids], mapping, drawn)
        categories = (codes, names)
        notes.append(
            f"coloured by {esc(colour)} ({_mono(labels.path.name)}: {with_value:,} of the "
            f"{drawn:,} drawn contigs labelled, {len(names):,} {esc(colour)} labels; the "
            f"{top} most frequent named, click a legend entry to hide it)"
        )
    elif colour == "length":
        notes.append("coloured by length (log10 bp)")
    elif colour == "gc" and not notes:
        notes.append("coloured by GC (%)")
    if labels is not None:
        notes.append(
            f"the tooltips show the labels of {_mono(labels.path.name)} "
            f"({esc(', '.join(labels.ranks))})"
        )
    sample_names, sample_note = _samples_for(points, item, samples, inputs)
    if sample_note:
        notes.append(esc(sample_note))
    title = f"{n:,} contigs" if not points.sampled else f"{drawn:,} of {n:,} contigs"
    if categories is not None:
        title += f", by {colour}"
    section.add(f"<h3>Map {_mono(item.path)} ({esc(map_data.method)})</h3>")
    fig = figures.map_figure(
        points,
        title=title,
        axis_labels=axis_names(map_data.method),
        colour=colour,
        categories=categories,
        clusters=clusters,
        samples=sample_names,
        labels=label_columns,
        top=top,
    )
    section.add(page.figure(fig))
    drawn_text = (
        f"All {n:,} contigs drawn"
        if not points.sampled
        else f"{drawn:,} of the {n:,} contigs drawn: a random sample (seed {seed}); the image "
        "below shows the density of all of them"
    )
    section.add(
        f'<p class="muted">{drawn_text}; {"; ".join(notes)}. Drag to pan, the wheel zooms, '
        "hover over a point for its contig.</p>"
    )
    if points.sampled:
        png = density_png(map_data, f"density of all {n:,} contigs")
        section.add(
            image(
                png,
                "density of all contigs",
                f"Density of all {n:,} contigs (counts per pixel, histogram-equalised).",
            )
        )
    return {
        "path": str(item.path.resolve()),
        "n_rows": n,
        "drawn": drawn,
        "sampled": points.sampled,
        "rows_sha256": points.rows_sha256,
        "density_image": points.sampled,
        "colour": colour,
    }


# -------------------------------------------------------------------------------- clusters


def _stats_columns(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(size, gc_spread) float64 arrays of a clusters.stats.tsv."""
    sizes, spreads = [], []
    _, rows = read_tsv(path)
    for row in rows:
        sizes.append(row.get("size"))
        spreads.append(row.get("gc_spread"))

    def floats(values: list[Any]) -> np.ndarray:
        return np.array(
            [v if isinstance(v, int | float) else np.nan for v in values], dtype=np.float64
        )

    return floats(sizes), floats(spreads)


def clusters_section(page: Page, section: Section, item: ReportInput) -> None:
    section.add(f"<h3>Clusters {_mono(item.path)}</h3>")
    header, summary = read_tsv(item.path / "summary.tsv")
    section.add(
        table(
            [Column(h, h.replace("_", " "), fmt=lambda v: number(v, 2)) for h in header],
            summary,
            caption="summary.tsv: one line per clustering.",
        )
    )
    entries = [
        e for e in item.record.get("clusterings", []) if isinstance(e, dict) and e.get("stats")
    ]
    spreads, sizes = [], []
    for entry in entries:
        size, spread = _stats_columns(item.path / str(entry["stats"]))
        name = str(entry.get("name", entry["stats"]))
        sizes.append((name, size))
        spreads.append((name, spread[size >= 2]))
    chosen = item.data["clustering"]
    first = next((e for e in entries if e.get("file") == chosen.file.name), None)
    if first is not None:
        header, rows = read_tsv(item.path / str(first["stats"]))
        rows.sort(key=lambda r: -r["size"] if isinstance(r.get("size"), int) else 0)
        section.add(
            table(
                [Column(h, h.replace("_", " "), fmt=lambda v: number(v, 2)) for h in header],
                rows[:TOP_ROWS],
                caption=f"The {min(TOP_ROWS, len(rows))} largest of the {len(rows):,} clusters "
                f"of {esc(chosen.name)} ({esc(first['stats'])}); GC in percent.",
            )
        )
    panels = [
        figures.histogram_figure(
            "GC spread per cluster (clusters of 2 or more contigs)", "GC spread (pp)", spreads
        ),
        figures.histogram_figure("cluster sizes", "contigs per cluster", sizes, log_x=True),
    ]
    slots = "".join(page.figure(p) for p in panels if p is not None)
    if slots:
        section.add(f'<div class="grid">{slots}</div>')


# -------------------------------------------------------------------------------- compare

#: the order the comparison figures are shown in
COMPARE_FIGURES = ("density_difference.png", "overlay.png", "composition.png")


def compare_section(section: Section, item: ReportInput) -> None:
    record = item.record
    groups = record.get("groups") or {}
    a, b = groups.get("a") or {}, groups.get("b") or {}
    section.add(f"<h3>Comparison {_mono(item.path)}</h3>")
    section.add(
        key_values(
            [
                ("map", _mono((record.get("map") or {}).get("path", "?"))),
                (
                    "group A",
                    esc(
                        f"{a.get('name', '?')}: {number(a.get('contigs_mapped'))} contigs on "
                        f"the map, samples {', '.join(map(str, a.get('samples', [])))}"
                    ),
                ),
                (
                    "group B",
                    esc(
                        f"{b.get('name', '?')}: {number(b.get('contigs_mapped'))} contigs on "
                        f"the map, samples {', '.join(map(str, b.get('samples', [])))}"
                    ),
                ),
                ("samples file", _mono((record.get("samples") or {}).get("path", "?"))),
            ]
        )
    )
    files = [str(f) for f in record.get("files", [])]
    pngs = sorted((f for f in files if f.endswith(".png")), key=_figure_order)
    for name in pngs:
        section.add(image((item.path / name).read_bytes(), name, esc(name)))
    if not pngs:
        section.add('<p class="muted">The comparison was written without PNG figures.</p>')
    if "composition.tsv" in files:
        header, rows = read_tsv(item.path / "composition.tsv")
        section.add(
            table(
                [Column(h, h.replace("_", " "), fmt=lambda v: number(v, 3)) for h in header],
                rows[:TOP_ROWS],
                caption=f"composition.tsv: the first {min(TOP_ROWS, len(rows))} of "
                f"{len(rows):,} rows (largest clusters first).",
            )
        )


def _figure_order(name: str) -> tuple[int, str]:
    return (COMPARE_FIGURES.index(name) if name in COMPARE_FIGURES else len(COMPARE_FIGURES), name)


# -------------------------------------------------------------------------------- provenance


def provenance_section(section: Section, inputs: Sequence[ReportInput]) -> None:
    for item in inputs:
        prov = item.provenance
        sums = list(recorded_checksums(item.record))
        listed = "<br>".join(
            f"{esc(where)}: {_mono(value)}" for where, value in sums[:MAX_CHECKSUMS]
        )
        if len(sums) > MAX_CHECKSUMS:
            listed += f"<br>… and {len(sums) - MAX_CHECKSUMS} more in {_mono(item.source)}"
        version = prov.get("kmervae_version", item.record.get("kmervae_version", "–"))
        pairs = [
            ("kind", esc(item.label)),
            ("path", _mono(item.path.resolve())),
            ("read from", _mono(item.source.resolve())),
        ]
        if item.via is not None:
            pairs.append(("in pipeline", _mono(item.via.resolve())))
        pairs += [
            ("kmervae version", esc(version)),
            ("command line", _mono(_command(prov))),
            ("seed", esc(prov.get("seed", "–"))),
            ("created", esc(prov.get("created", "–"))),
            ("checksums", listed or "–"),
        ]
        section.add(f'<div class="input">{key_values(pairs)}</div>')
