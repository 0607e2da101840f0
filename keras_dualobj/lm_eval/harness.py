"""Running lm-evaluation-harness tasks on a `DualLM`, once per scoring mode.

Needs the optional extra `pip install keras-dualobj[eval]` (`lm-eval`). Tasks are the
harness's names (`hellaswag`, `arc_easy`, ...; their data are downloaded from the
Hugging Face Hub on first use) or tasks defined by YAML files in `include_path`
(e.g. a local JSON Lines file read through `datasets`, which works offline).
"""

from keras_dualobj.utils.validation import check_int

SCORING_MODES = ("ar", "prefix", "md", "pll")


def _task_manager(task_manager_class, tasks, include_path):
    """Only the tasks under `include_path` when they are all there: indexing the
    harness's thousands of built-in task files takes seconds to tens of seconds."""
    if include_path is not None:
        local = task_manager_class(include_path=str(include_path), include_defaults=False)
        if all(task in local.all_tasks for task in tasks):
            return local
    return task_manager_class(include_path=None if include_path is None else str(include_path))


def run_harness(
    model,
    tasks,
    modes=("ar",),
    *,
    include_path=None,
    num_samples=16,
    seed=0,
    batch_size=16,
    limit=None,
    log_samples=False,
):
    """`lm_eval.simple_evaluate` of `model` on `tasks`, in each of `modes`.

    Args:
        model: a `DualLM` with a tokenizer.
        tasks: list of task names (non-empty).
        modes: any of `"ar"`, `"prefix"`, `"md"`, `"pll"`
            (`keras_dualobj.lm_eval.model`).
        include_path: optional folder of task YAML files.
        num_samples, seed: the MD bound's samples and seed (mode `"md"`).
        batch_size: rows per forward pass.
        limit: optional int, examples per task (a quick look).
        log_samples: keep the per-request responses (`samples` in each result).

    Returns:
        dict mapping each mode to the harness's result dict (`results` holds the
        metrics per task).

    Example:
    >>> run_harness(None, [], ("ar",))
    Traceback (most recent call last):
    ...
    ValueError: `tasks` must name at least one harness task; received [].
    """
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise ValueError(f"`tasks` must name at least one harness task; received {tasks}.")
    modes = [modes] if isinstance(modes, str) else list(modes)
    unknown = [mode for mode in modes if mode not in SCORING_MODES]
    if unknown or not modes:
        raise ValueError(f"`modes` must be some of {list(SCORING_MODES)}; received {modes}.")
    if limit is not None:
        check_int("limit", limit, minimum=1)
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ImportError(
            "Harness tasks need lm-evaluation-harness: pip install 'keras-dualobj[eval]'."
        ) from None
    from keras_dualobj.lm_eval.model import KerasDualLM

    task_manager = _task_manager(TaskManager, tasks, include_path)
    results = {}
    for mode in modes:
        harness_model = KerasDualLM(
            model=model, mode=mode, mc_samples=num_samples, seed=seed, batch_size=batch_size
        )
        results[mode] = lm_eval.simple_evaluate(
            model=harness_model,
            tasks=tasks,
            task_manager=task_manager,
            limit=limit,
            log_samples=log_samples,
            bootstrap_iters=0,
        )
    return results
