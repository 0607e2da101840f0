"""Diagnostic for issue 16 part 5: RSS per tiny study cell, with pieces switched off.

Not a test. Runs N tiny cells in one process and prints RSS after
`keras.backend.clear_session()` + `gc.collect()`, and again after glibc
`malloc_trim(0)` (a drop there is allocator retention, not a leak).

MODE (env): `full` = `runner.run_cell`; else a combination of `fit` (fit on
NumPy arrays), `tfdata` (fit on `make_training_dataset`), `eval` (evaluate the
shared validation dataset), `save` (`model.save`), `adamw` (AdamW instead of
the recipe's MatrixMuon), `nojit` (with `adamw`: `jit_compile=False`);
`build` alone builds and compiles. ALPHA (env): repeat one α N times.

    MODE=fit N=6 KERAS_BACKEND=tensorflow python benchmarks/study_memory_bisect.py
"""
import ctypes, gc, os, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np, psutil
import keras
from keras_dualobj.study import StudyConfig
from keras_dualobj.study.runner import plan_cells, run_cell
from keras_dualobj.data import make_training_dataset, plan_repetition

libc = ctypes.CDLL("libc.so.6")
def rss(): return psutil.Process().memory_info().rss / 2**20
MODE = os.environ.get("MODE", "full")
N = max(4, int(os.environ.get("N", "8")))
steps, bs, L = 4, 8, 32
config = StudyConfig(ar_fractions=tuple(np.linspace(0, 1, N).tolist()) if 'ALPHA' not in os.environ else (float(os.environ['ALPHA']),), repetitions=(1,),
    token_budget=steps*bs*L, preset="tiny", source="builtin", sequence_length=L, batch_size=bs,
    evaluations=2, evaluation_batches=1, elbo_samples=1)
data = config.recipe.prepare_data(data_dir=None, repetitions=1)
tmp = tempfile.mkdtemp()
out = []
for i, cell in enumerate(plan_cells(config) * (N if 'ALPHA' in os.environ else 1)):
    d = f"{tmp}/{i}"
    if MODE == "full":
        run_cell(cell, config, data, d)
    else:
        spec = config.cell_spec(cell)
        model = spec.build_model(tokenizer=data.tokenizer)
        if 'adamw' in MODE: model.compile(optimizer='auto', jit_compile=('nojit' not in MODE) and 'auto')
        else: spec.compile(model, cell.num_steps)
        plan = plan_repetition(data.train_rows, batch_size=bs, repetitions=1, unique_tokens=cell.unique_tokens)
        if "tfdata" in MODE:
            ds = make_training_dataset(data.train_rows, plan, seed=0)
        else:
            ds = {"token_ids": data.train_rows.token_ids[:steps*bs], "document_ids": data.train_rows.document_ids[:steps*bs]}
        if "fit" in MODE:
            if isinstance(ds, dict): model.fit(ds, batch_size=bs, epochs=1, verbose=0, shuffle=False)
            else: model.fit(ds, epochs=1, verbose=0)
        if "eval" in MODE:
            model.evaluate(data.validation_dataset, steps=1, verbose=0)
        if "save" in MODE:
            model.save(f"{tmp}/m{i}.keras")
        del model, ds
    keras.backend.clear_session()
    gc.collect()
    a = rss()
    libc.malloc_trim(0)
    b = rss()
    out.append((a, b))
    print(len(gc.garbage), end=" "); print(f"cell {i}: rss {a:.0f} MB, after malloc_trim {b:.0f} MB", flush=True)
a = np.array(out)
print(MODE, "slope from cell 2: before trim %.1f, after trim %.1f MB/cell" % (np.polyfit(np.arange(N-2), a[2:,0], 1)[0], np.polyfit(np.arange(N-2), a[2:,1], 1)[0]))
