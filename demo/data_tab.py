"""The Data tab: the data-vs-compute study (aigc.study), shown. Quality against the share of the
training data, one line per compute level and augmentation setting, error bars over the seeds (the
SVG figure of aigc.study.figures, the one `aigc study figures` writes), the readings under it from
the library's answers, every number in a table, and the commands that make them. Everything comes from study.json (aigc.hub.STUDY_DIR unless told otherwise); with
none there, the tab says so and shows the command that makes it.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from aigc.cli.study import repo_relative, run_commands
from aigc.hub import STUDY_DIR
from aigc.study import load_results
from aigc.study.figures import task_figure


def _pct(f: float) -> str:
    return f"{f * 100:g}%"


def load_study(study_dir=None) -> tuple[dict | None, str]:
    """(results, message): the study's results with their summary and answers, or None and a line
    saying why there are none to show."""
    study_dir = Path(study_dir or STUDY_DIR)
    if not (study_dir / "study.json").is_file():
        return None, f"No study results yet: `{repo_relative(study_dir)}/study.json` does not exist."
    try:
        results = load_results(study_dir)
    except ValueError as e:
        return None, f"The study's results could not be read: {e}"
    if not results["summary"]:
        return None, f"`{repo_relative(study_dir)}/study.json` holds no measured cells yet."
    return results, ""


def primary_metric(results: dict, task: str) -> str | None:
    """The metric a task is judged by: its recipe's, else the first it recorded."""
    metric = (results.get("recipe", {}).get(task) or {}).get("primary")
    by_metric = results["series"].get(task, {})
    return metric if metric in by_metric else next(iter(by_metric), None)


def _answer(results: dict, task: str, key: str) -> list[str]:
    return next((a["sentences"] for a in results["answers"] if a["task"] == task and a["key"] == key), [])


def reading(results: dict, task: str, kind: str) -> str:
    """The one sentence under a plot: the augmentation verdict under the augmentation plot; under
    the data plot, whether more data or more steps was worth more (else what more data took)."""
    if kind == "augment":
        said = _answer(results, task, "augmentation")
        return said[-1] if said else ""
    for key in ("crossing", "more_data", "more_compute"):
        said = _answer(results, task, key)
        if said:
            return said[-1]
    return ""


def numbers_table(results: dict) -> pd.DataFrame:
    """Every (task, metric, data, augmentation, compute) group: mean, standard error, seeds."""
    rows = [{"task": s["task"], "metric": s["metric"], "data": _pct(s["fraction"]),
             "augment": ("on" if s["augment"] else "off") if s["task"] == "images" else "-",
             "steps": f"{s['steps_multiplier']:g}x", "mean": round(s["mean"], 5),
             "± s.e.": None if s["sem"] is None else round(s["sem"], 5), "seeds": s["n"]}
            for s in results["summary"]]
    return pd.DataFrame(rows, columns=["task", "metric", "data", "augment", "steps", "mean", "± s.e.", "seeds"])


def answers_markdown(results: dict) -> str:
    out = []
    for a in results["answers"]:
        out.append(f"**{a['question']}** ({a['task']}, {a['metric']})\n")
        out += [f"- {s}" for s in a["sentences"]]
        out.append("")
    return "\n".join(out)


def commands_markdown() -> str:
    return "\n".join(f"- {what}:\n\n  ```\n  {cmd}\n  ```" for what, cmd in run_commands())


def _intro(results: dict) -> str:
    recipe = results.get("recipe", {})
    parts = []
    for task in results["series"]:
        r = recipe.get(task, {})
        known = [r["dataset"]] if "dataset" in r else []
        known += [f"{r['base_steps']} steps at 1x"] if "base_steps" in r else []
        known += [f"batch {r['batch_size']}"] if "batch_size" in r else []
        parts.append(f"{task}: " + ", ".join(known + [f"judged by {primary_metric(results, task)}"]))
    runs = {tuple(c[k] for k in ("task", "fraction", "augment", "steps_multiplier", "seed")) for c in results["cells"]}
    seeds = {c["seed"] for c in results["cells"]}
    return (f"What {len(runs)} trained runs measured ({'; '.join(parts)}). Each point is the mean over "
            f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}; the vertical bars are ± one standard error. "
            "Hover a point for its numbers; all of them are in the table below.")


def build_data_tab(registry=None, study_dir=None) -> SimpleNamespace:
    """Lay out the Data tab inside the current gr.Tab. `registry` is unused (every tab builder
    takes it); `study_dir`: where study.json is (default aigc.hub.STUDY_DIR)."""
    results, message = load_study(study_dir)
    tab = SimpleNamespace(results=results, message=message, plots=[], readings=[], table=None, commands=None)
    gr.Markdown("## Data over compute, measured\nDoes more data or more compute make the better model? "
                "A grid of training runs answers it with numbers.")
    if results is None:
        gr.Markdown(f"{message} Make them with the commands below; this tab then shows them.")
    else:
        gr.Markdown(_intro(results))
        for task in results["series"]:
            svg = task_figure(results, task)
            if svg is None:
                continue
            tab.plots.append((task, gr.HTML(f'<div class="aigc-curve">{svg}</div>', elem_id=f"data-figure-{task}")))
            for kind in ("data", "augment"):
                said = reading(results, task, kind)
                if said or kind == "data":
                    tab.readings.append(gr.Markdown(said, elem_classes=["aigc-small"]))
        with gr.Accordion("Every measured effect", open=False):
            gr.Markdown(answers_markdown(results))
        gr.Markdown("### The numbers")
        tab.table = gr.Dataframe(numbers_table(results), interactive=False, wrap=True)
        if results.get("notes"):
            gr.Markdown("\n".join(f"- {n}" for n in results["notes"]), elem_classes=["aigc-small"])
    tab.commands = gr.Markdown("### Run it\n" + commands_markdown())
    return tab
